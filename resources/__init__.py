"""Resources and IO managers shared by every pipeline (import submodules directly)."""
