"""Artifact formats: typed containers and their readers/writers, shared by the stages that write and read them."""
