"""PKGDWJOB: turn verified mappings into jobs, target tables and job flows.

``create_update_job`` copies the current mapping into DMS_JOB / DMS_JOBDTL
(historised), creates or extends the target table and writes the job flow.
The target table gets, besides the mapped columns (in EXCSEQ order, typed
from the DMS_PARAMS datatype codes of the target's database type):

* ``skey`` -- a surrogate key from its own sequence (DIM, FCT, MRT);
* ``rwhkey`` -- the row hash the loads compare;
* ``curflg``, ``fromdt``, ``todt`` -- the version columns of a DIM;
* ``reccrdt``, ``recupdt`` -- when a row was created and last updated;

and the indexes the set-based loads need: for a DIM a unique index on the
business key of the current versions (a key can never have two current
versions), and an index on the business key over all rows (NRM/FCT/MRT, and
a DIM with several combinations, whose loads look up the replaced version).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg import sql

from dms_pkg import __version__
from dms_pkg.db.base import Session
from dms_pkg.engine.columns import database_error, describe_table
from dms_pkg.errors import OBJECT_NOT_IN_PREREQUISITE_STATE, DmsError
from dms_pkg.mapper import flow
from dms_pkg.mapper.context import Context, database_type
from dms_pkg.mapper.pkgdwmapr import datatype_codes, resolve

SURROGATE_TYPES = ("DIM", "FCT", "MRT")


def version() -> str:
    return f"PKGDWJOB dms_pkg {__version__}"


def _q(composable: sql.Composable) -> str:
    return composable.as_string(None)


def current_job(ctx: Context, mapref: str) -> dict[str, Any]:
    """The current DMS_JOB row of a mapping; an error saying how to make it if none."""
    mapref = mapref.strip().upper()
    rows = ctx.rows("SELECT * FROM dms.dms_job WHERE mapref = $1 AND curflg = 'Y'", [mapref])
    if not rows:
        raise DmsError(f"mapping {mapref} has no job", sqlstate="42704",
                       hint=f"create it with SELECT pkgdwjob.create_update_job('{mapref}')")
    return rows[0]


def _job_details(ctx: Context, mapref: str) -> list[dict[str, Any]]:
    return ctx.rows("SELECT * FROM dms.dms_jobdtl WHERE mapref = $1 AND curflg = 'Y'"
                    " ORDER BY excseq NULLS LAST, trgclnm", [mapref.strip().upper()])


def create_update_job(ctx: Context, mapref: str) -> int:
    rows = ctx.rows("SELECT mapref, lgvrfyflg, stflg FROM dms.dms_mapr"
                    " WHERE mapref = $1 AND curflg = 'Y'", [mapref.strip().upper()])
    if not rows:
        raise DmsError(f"mapping {mapref.upper()} does not exist", sqlstate="42704")
    mapping = rows[0]
    if str(mapping["lgvrfyflg"]).strip() != "Y":
        raise DmsError(
            f"mapping {mapping['mapref']} is not verified",
            sqlstate=OBJECT_NOT_IN_PREREQUISITE_STATE,
            hint=f"SELECT * FROM pkgdwmapr.validate_mapping_details('{mapping['mapref']}')")
    if str(mapping["stflg"]).strip() != "A":
        raise DmsError(
            f"mapping {mapping['mapref']} is not active",
            sqlstate=OBJECT_NOT_IN_PREREQUISITE_STATE,
            hint=f"SELECT pkgdwmapr.activate_deactivate_mapping('{mapping['mapref']}', 'A')")
    jobid = int(ctx.write("save_job", mapref=mapping["mapref"])["id"])
    create_target_table(ctx, mapping["mapref"])
    create_job_flow(ctx, mapping["mapref"])
    return jobid


def column_types(ctx: Context, job: Mapping[str, Any], details: list[dict[str, Any]]
                 ) -> dict[str, str]:
    """Target column -> SQL type, from the DMS_PARAMS datatype codes of the target's DBTYP."""
    dbtyp = database_type(ctx, job.get("trgconid"))
    codes = datatype_codes(ctx, dbtyp)
    types: dict[str, str] = {}
    for d in details:
        code = str(d["trgcldtyp"]).upper()
        if code not in codes:
            raise DmsError(f"datatype code {code} (column {d['trgclnm']}) has no DMS_PARAMS row "
                           f"for {dbtyp}", sqlstate="42704",
                           hint=f"INSERT INTO dms.dms_params (prtyp, prcd, prval) VALUES "
                           f"('{dbtyp}', '{code}', '<type>')")
        types[flow.target_name(str(d["trgclnm"]))] = str(codes[code])
    return types


def create_target_table(ctx: Context, mapref: str) -> str:
    job = current_job(ctx, mapref)
    details = _job_details(ctx, mapref)
    types = column_types(ctx, job, details)
    schema = flow.target_name(str(job["trgschm"]))
    table = flow.target_name(str(job["trgtbnm"]))
    kind = str(job["trgtbtyp"])
    keys = [flow.target_name(str(d["trgclnm"])) for d in sorted(
        (d for d in details if d["trgkeyflg"] == "Y"), key=lambda d: d.get("trgkeyseq") or 0)]
    wanted: list[tuple[str, str]] = []
    if kind in SURROGATE_TYPES:
        wanted.append(("skey", "bigint"))
    # The business key is NOT NULL: a load finds the rows of a key with "=",
    # which never matches NULL, so a NULL key would be inserted again by every
    # load (a new current version each time for a DIM).  The target refuses it
    # instead, and the row goes to DMS_JOBERR.  (Only in a new table: an added
    # key column of a table with rows cannot be NOT NULL.)
    wanted += [(name, f"{type_sql} NOT NULL" if name in keys else type_sql)
               for name, type_sql in types.items()]
    wanted.append(("rwhkey", "text"))
    if kind == "DIM":
        wanted += [("curflg", "char(1) NOT NULL DEFAULT 'Y'"), ("fromdt", "timestamptz"),
                   ("todt", "timestamptz")]
    wanted += [("reccrdt", "timestamptz NOT NULL DEFAULT now()"),
               ("recupdt", "timestamptz NOT NULL DEFAULT now()")]
    combinations = {d.get("mapcmbcd") for d in details if d["trgkeyflg"] != "Y"}
    # A DIM's loads find the current version through its unique current-key
    # index; an index over every version is only needed when one combination
    # carries the columns of another over from the version it replaces
    # (several combinations).  One index less makes a first load ~20 % faster.
    all_versions = kind != "DIM" or len(combinations) > 1
    with ctx.session_on(job.get("trgconid")) as target:
        try:
            _create_or_extend(target, schema, table, kind, keys, wanted, all_versions)
        except DmsError:
            raise
        except Exception as exc:
            raise database_error(exc, f"cannot create or extend target {schema}.{table}",
                                 "42000", hint="the caller needs CREATE on the target schema "
                                 "(and to own the table to add columns)") from None
        if target is not ctx.db:
            target.commit()
    return "Y"


def _create_or_extend(target: Session, schema: str, table: str, kind: str, keys: list[str],
                      wanted: list[tuple[str, str]], all_versions: bool) -> None:
    name = sql.Identifier(schema, table)
    existing = describe_table(target, schema, table)
    if existing is None:
        columns = []
        for column, type_sql in wanted:
            if column == "skey":
                sequence = sql.Identifier(schema, f"{table[:55]}_skey_seq")
                target.execute(_q(sql.SQL("CREATE SEQUENCE IF NOT EXISTS {}").format(sequence)))
                columns.append(sql.SQL("skey bigint NOT NULL DEFAULT nextval({}) PRIMARY KEY")
                               .format(sql.Literal(_q(sequence))))
            else:
                columns.append(sql.SQL("{} {}").format(sql.Identifier(column), sql.SQL(type_sql)))
        target.execute(_q(sql.SQL("CREATE TABLE {} ({})").format(
            name, sql.SQL(", ").join(columns))))
        if keys and all_versions:
            target.execute(_q(sql.SQL("CREATE INDEX {} ON {} ({})").format(
                sql.Identifier(f"{table[:50]}_bk_ix"), name,
                sql.SQL(", ").join(sql.Identifier(k) for k in keys))))
        if kind == "DIM" and keys:
            target.execute(_q(sql.SQL("CREATE UNIQUE INDEX {} ON {} ({}) WHERE curflg = 'Y'")
                              .format(sql.Identifier(f"{table[:50]}_cur_uk"), name,
                                      sql.SQL(", ").join(sql.Identifier(k) for k in keys))))
        return
    have = {c.name for c in existing}
    for column, type_sql in wanted:
        if column not in have and column != "skey":
            if column in keys:
                type_sql = type_sql.removesuffix(" NOT NULL")
            target.execute(_q(sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                name, sql.Identifier(column), sql.SQL(type_sql))))
    if keys and all_versions:  # say, a DIM that gained a second combination
        target.execute(_q(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
            sql.Identifier(f"{table[:50]}_bk_ix"), name,
            sql.SQL(", ").join(sql.Identifier(k) for k in keys))))


def build_flow(ctx: Context, mapref: str) -> flow.JobFlow:
    job = current_job(ctx, mapref)
    return flow.build(job, _job_details(ctx, mapref), lambda m: resolve(ctx, m))


def create_job_flow(ctx: Context, mapref: str) -> int:
    """Write DMS_JOBFLW.DWLOGIC; a new version only when the text changes."""
    text = flow.render(build_flow(ctx, mapref))
    return int(ctx.write("save_job_flow", mapref=mapref.strip().upper(), dwlogic=text)["id"])


def create_all_jobs(ctx: Context) -> list[dict[str, Any]]:
    """A job for every current, verified, active mapping; one failing does not stop the rest."""
    done = []
    for row in ctx.rows("SELECT mapref FROM dms.dms_mapr WHERE curflg = 'Y' AND lgvrfyflg = 'Y'"
                        " AND stflg = 'A' ORDER BY mapref"):
        try:
            with ctx.db.savepoint():  # a mapping that fails leaves nothing half made
                jobid = create_update_job(ctx, row["mapref"])
            done.append({"mapref": row["mapref"], "jobid": jobid, "error": None})
        except DmsError as exc:
            done.append({"mapref": row["mapref"], "jobid": None, "error": exc.message})
    return done
