"""The image store and the import pipeline.

Kept empty on purpose: worker processes import `app.images.decode` and should
not pay for SQLAlchemy. Import `app.images.ingest` for `import_paths` and
`import_uploads`, `app.images.store` for file locations.
"""
