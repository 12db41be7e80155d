ALTER TABLE `revisions` ADD `stream_sequence` integer;--> statement-breakpoint
CREATE UNIQUE INDEX `revisions_stream_sequence_unique` ON `revisions` (`stream_sequence`);