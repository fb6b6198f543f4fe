"""helpers.grade, in parts: reading submissions, running them, and the process that runs one."""
