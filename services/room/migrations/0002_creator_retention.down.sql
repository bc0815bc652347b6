DROP TABLE IF EXISTS room_entries_archive;
DROP TABLE IF EXISTS rooms_archive;
DROP INDEX IF EXISTS rooms_closed_idx;
DROP INDEX IF EXISTS rooms_creator_open_idx;
ALTER TABLE rooms DROP COLUMN IF EXISTS creator;
