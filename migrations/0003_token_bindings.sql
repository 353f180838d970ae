ALTER TABLE `tokens` ADD `agent` text;--> statement-breakpoint
ALTER TABLE `tokens` ADD `region` text;--> statement-breakpoint
ALTER TABLE `tokens` ADD `node` text;