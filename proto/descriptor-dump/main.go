// Command descriptor-dump writes the Envoy API file descriptors that Mandate
// uses, exactly as compiled into the go-control-plane release that matches the
// pinned Envoy version, as a FileDescriptorSet. proto/build.sh feeds it to buf.
package main

import (
	"fmt"
	"os"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	_ "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// rootFiles are the entry points; everything they import comes along.
var rootFiles = []string{
	"envoy/service/ext_proc/v3/external_processor.proto",
	"envoy/service/discovery/v3/ads.proto",
	"envoy/config/cluster/v3/cluster.proto",
	"envoy/config/endpoint/v3/endpoint.proto",
	"envoy/config/listener/v3/listener.proto",
	"envoy/config/route/v3/route.proto",
	"envoy/extensions/access_loggers/filters/cel/v3/cel.proto",
	"envoy/extensions/access_loggers/stream/v3/stream.proto",
	"envoy/extensions/filters/http/ext_proc/v3/ext_proc.proto",
	"envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit.proto",
	"envoy/extensions/filters/http/rbac/v3/rbac.proto",
	"envoy/extensions/filters/http/router/v3/router.proto",
	"envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
	"envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
	"envoy/extensions/transport_sockets/tls/v3/tls.proto",
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: descriptor-dump OUT.binpb")
		os.Exit(2)
	}
	seen := map[string]bool{}
	set := &descriptorpb.FileDescriptorSet{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imports := fd.Imports()
		for i := 0; i < imports.Len(); i++ {
			add(imports.Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	for _, name := range rootFiles {
		fd, err := protoregistry.GlobalFiles.FindFileByPath(name)
		if err != nil {
			fmt.Fprintf(os.Stderr, "descriptor-dump: %s: %v\n", name, err)
			os.Exit(1)
		}
		add(fd)
	}
	out, err := proto.Marshal(set)
	if err != nil {
		fmt.Fprintln(os.Stderr, "descriptor-dump:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(os.Args[1], out, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "descriptor-dump:", err)
		os.Exit(1)
	}
	fmt.Printf("descriptor-dump: %d files\n", len(set.File))
}
