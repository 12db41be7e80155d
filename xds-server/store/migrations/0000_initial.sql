CREATE TABLE `credentials` (
	`id` text PRIMARY KEY NOT NULL,
	`persona` text NOT NULL,
	`agent` text NOT NULL,
	`secret_hash` text NOT NULL,
	`created_at` text NOT NULL,
	`expires_at` text,
	`revoked_at` text
);
--> statement-breakpoint
CREATE INDEX `credentials_persona_idx` ON `credentials` (`persona`);--> statement-breakpoint
CREATE TABLE `revisions` (
	`version` integer PRIMARY KEY NOT NULL,
	`created_at` text NOT NULL,
	`actor` text NOT NULL,
	`summary` text NOT NULL,
	`bundle_json` text NOT NULL
);
