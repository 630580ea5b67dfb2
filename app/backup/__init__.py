"""Online backup of a Loupe data dir to one file, and restore into a new one."""
