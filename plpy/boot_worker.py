# Body of dms.boot_worker(): load a worker's code while its run is planned.
# The preamble has put this version's dms_pkg on the path; importing the
# worker's entry module is the boot (a worker's first chunk no longer waits
# for it).
import dms_pkg.engine.server  # noqa: F401

return True
