"""Who the process runs as: from the parse, the image config and the running container."""

import re

from checks import Evidence, failed, passed, skipped, variant_check
from grader.dockerfile import is_root_user

_CREATES_USER = re.compile(r"\b(adduser|useradd)\b")


def _uid_command(v) -> Evidence:
    return Evidence("command", "docker exec <container> cat /proc/1/status  # Uid: line")


def _observed_uid(v):
    """The uid read from the running container, or the Outcome to return when there is none."""
    r = v.runtime
    if r is None or not r.started:
        return skipped("not_run")
    if r.uid is None and r.exited_early:
        return skipped("exited")
    if r.uid is None:
        return failed("unknown", (_uid_command(v),))
    return r.uid


@variant_check("user_checked")
def user_checked(v, a):
    uid = _observed_uid(v)
    return uid if not isinstance(uid, int) else passed("ok", uid=uid)


@variant_check("runs_as_root")
def runs_as_root(v, a):
    uid = _observed_uid(v)
    if not isinstance(uid, int):
        return uid
    if uid != 0:
        return failed("not_root", (_uid_command(v),), uid=uid)
    return passed("ok")


@variant_check("runtime_nonroot")
def runtime_nonroot(v, a):
    uid = _observed_uid(v)
    if not isinstance(uid, int):
        return uid
    if uid == 0:
        return failed("root", (Evidence("observed", "uid=0 (root)"), _uid_command(v)))
    return passed("ok", uid=uid)


@variant_check("user_created")
def user_created(v, a):
    if v.parsed is None:
        return skipped("not_parsed")
    for stage in v.parsed.final.lineage():
        for ins in stage.of("RUN"):
            if _CREATES_USER.search(" ".join(ins.args)):
                return passed("ok", evidence=(Evidence.at(ins),))
    return failed("missing")


@variant_check("final_user_nonroot")
def final_user_nonroot(v, a):
    if v.parsed is None:
        return skipped("not_parsed")
    user = v.parsed.final_user()
    if user is None:
        return failed("no_user")
    spec = user.args[0] if user.args else ""
    evidence = (Evidence.at(user),)
    if is_root_user(spec):
        return failed("root", evidence, user=spec, line=user.line)
    if v.image is not None and is_root_user(v.image.user or "root"):
        return failed("image_root", evidence, user=v.image.user or "root")
    return passed("ok", evidence, user=spec)
