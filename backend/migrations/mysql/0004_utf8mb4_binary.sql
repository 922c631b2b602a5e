-- Every text column in full UTF-8 (operators write notes in Chinese) and with
-- binary collation: user ids are case-sensitive, as the contract's
-- [A-Za-z0-9_-] ids are everywhere else ("carol" is not "Carol").
ALTER TABLE orders CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE edge_rules CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE checklist_ticks CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
