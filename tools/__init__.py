"""Instructor and maintenance tools (student version, grading). Not imported by the notebooks."""
