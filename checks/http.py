"""The HTTP contract, probed on the running container."""

from __future__ import annotations

from checks import Evidence, Outcome, failed, passed, skipped, variant_check
from grader.assignment import Assignment
from grader.facts import VariantFacts


@variant_check("http_contract", reads=("runtime",),
               reasons=("not_ready", "not_run", "not_started", "ok", "oom", "probe", "silent", "wrong_port"))
def http_contract(v: VariantFacts, a: Assignment) -> Outcome:
    r = v.runtime
    if r is None:
        return skipped("not_run")
    log = (Evidence("log", r.log_tail),) if r.log_tail else ()
    if not r.started:
        return failed("not_started", log, error=r.error or "")
    if r.oom_killed:
        limit = round((r.memory_limit_bytes or 0) / 2**20)
        return failed("oom", log, limit_mib=limit)
    if not r.ready:
        if a.app_port in r.listening_ports:
            return failed("silent", log, port=a.app_port, error=r.error or "")
        if r.listening_ports:
            ports = ", ".join(map(str, r.listening_ports))
            return failed("wrong_port", (Evidence("observed", f"listening: {ports}"), *log),
                          port=a.app_port, ports=ports)
        return failed("not_ready", log, port=a.app_port, error=r.error or "",
                      code=r.exit_code, oom=r.oom_killed)
    for probe in r.probes:
        if not probe.passed:
            observed = probe.error or f"{probe.status} {_short(probe.body)} ({probe.content_type or 'no Content-Type'})"
            return failed("probe", (Evidence("observed", observed), *log),
                          method=probe.method, path=probe.path,
                          expected=f"{probe.expected_status} {probe.expected_json}",
                          observed=observed)
    return passed("ok", count=len(r.probes))


@variant_check("port_honoured", reads=("port_runtime",), reasons=("ignored", "not_configured", "not_run", "ok"))
def port_honoured(v: VariantFacts, a: Assignment) -> Outcome:
    """The server listens where its environment says (PORT), so it can run anywhere."""
    r = v.port_runtime
    if not a.port_env or not a.alt_port:
        return skipped("not_configured")
    if r is None:
        return skipped("not_run")
    command = Evidence("command", f"docker run --rm -e {a.port_env}={a.alt_port} -p {a.alt_port}:{a.alt_port} IMAGE")
    if r.ready and r.probes and r.probes[0].passed:
        return passed("ok", var=a.port_env, port=a.alt_port)
    ports = ", ".join(map(str, r.listening_ports)) or "?"
    return failed("ignored", (Evidence("observed", f"listening: {ports}"), command),
                  var=a.port_env, port=a.alt_port, ports=ports)


def _short(body: str | None, limit: int = 200) -> str:
    text = repr(body) if body is not None else "(no body)"
    return text if len(text) <= limit else text[:limit] + "…"
