# Body of dms.version(): the version of the dms_pkg the server imported.
return dms_pkg.__version__
