#!/usr/bin/env python3
"""Run Singer's `tap-quickbooks` (singer-io, 2.5.0), unmodified, against qbo-sim.

Only its hosts change: it runs under `intuit_rebind.py`, which sends its calls for
`quickbooks.api.intuit.com` and `oauth.platform.intuit.com` to the simulator. The run is the one a
Singer runner makes:
  1. `tap-quickbooks --config C --discover`: refreshes the token (writing the rotated refresh
     token back into C), reads CompanyInfo as its authorization check, prints the catalog;
  2. every stream but `profit_loss_report` (the simulator serves no reports) is selected;
  3. `tap-quickbooks --config C --catalog K`: all 29 query streams go through the batch endpoint
     (one `BatchItemRequest` with 29 queries per round, `STARTPOSITION` advancing per stream),
     then `deleted_objects` through CDC.
The extracted ids of the 26 entities the simulator holds data of must be exactly the simulator's
(inactive rows included), the other streams (budgets, tax agencies, deleted objects: nothing is
deleted) empty, and the config's final refresh token must still work.

Usage: python singer_tap_quickbooks_check.py --base-url http://127.0.0.1:PORT [--workdir DIR]
       [--ids-out FILE] [--max-results N] [--start-date YYYY-MM-DDTHH:MM:SSZ]
Run it with the interpreter of the environment `tap-quickbooks==2.5.0` is installed in.
Exit status 0 when every check passed.
"""

import argparse
import collections
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from qbo_sim_api import STREAMS, Checks, Sim, expect, messages, parse_time, run_connector, tail, write_ids  # noqa: E402

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", default=os.environ.get("QBO_SIM_BASE_URL", "http://127.0.0.1:8080"))
    ap.add_argument("--client-id", default=os.environ.get("QBO_SIM_CLIENT_ID", "sim-client-id"))
    ap.add_argument("--client-secret", default=os.environ.get("QBO_SIM_CLIENT_SECRET", "sim-client-secret"))
    ap.add_argument("--realm-id", default=os.environ.get("QBO_SIM_REALM_ID", "9130350000000001"))
    ap.add_argument("--start-date", help="default: the day before the simulator's earliest change")
    ap.add_argument("--max-results", default="200", help="the tap's page size (its default is 1000)")
    ap.add_argument(
        "--workdir", help="where config, catalog and outputs go (default: a temp dir, removed if all passed)"
    )
    ap.add_argument("--ids-out", help="write {stream: ids} extracted here, as JSON")
    args = ap.parse_args()
    work = args.workdir or tempfile.mkdtemp(prefix="tap-quickbooks-")
    os.makedirs(work, exist_ok=True)
    sim = Sim(args.base_url, args.client_id, args.client_secret, args.realm_id)
    checks = Checks()

    # Connect: a fresh grant; one refresh of our own to read the data's time span.
    at, rt = sim.refresh(sim.reconnect())
    start_date = args.start_date or sim.earliest_day(at)
    config_path = os.path.join(work, "config.json")
    config = {
        "client_id": args.client_id,
        "client_secret": args.client_secret,
        "refresh_token": rt,
        "realm_id": args.realm_id,
        "start_date": start_date,
        "user_agent": "qbo-sim peer check (tap-quickbooks)",
        "sandbox": "false",
        "max_results": args.max_results,
    }
    with open(config_path, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
    print(f"tap-quickbooks against {sim.base}, start_date {start_date}, workdir {work}", flush=True)

    catalog_path = os.path.join(work, "catalog.json")
    state = {}

    def discover():
        out, err = os.path.join(work, "discover.out"), os.path.join(work, "discover.err")
        code, secs = run_connector(sim.base, ["tap-quickbooks", "--config", config_path, "--discover"], out, err)
        expect(code == 0, f"exit {code}:\n{tail(err)}")
        with open(out, encoding="utf-8") as f:
            catalog = json.load(f)
        streams = catalog["streams"]
        expect(len(streams) == 31, f"{len(streams)} streams")
        selected = 0
        for s in streams:
            if s["tap_stream_id"] == "profit_loss_report":
                continue
            for m in s["metadata"]:
                if m["breadcrumb"] == []:
                    m["metadata"]["selected"] = True
                    selected += 1
        with open(catalog_path, "w", encoding="utf-8") as f:
            json.dump(catalog, f)
        with open(config_path, encoding="utf-8") as f:
            written = json.load(f)
        expect(written["refresh_token"] != rt, "the rotated refresh token was not written back")
        with open(err, encoding="utf-8") as f:
            log = f.read()
        expect("/companyinfo/" + args.realm_id in log, "no CompanyInfo authorization check")
        return f"{len(streams)} streams, {selected} selected, token rotated and saved, {secs:.1f}s"

    def sync():
        out, err = os.path.join(work, "sync.out"), os.path.join(work, "sync.err")
        code, secs = run_connector(
            sim.base, ["tap-quickbooks", "--config", config_path, "--catalog", catalog_path], out, err
        )
        expect(code == 0, f"exit {code}:\n{tail(err)}")
        records = collections.defaultdict(list)
        for m in messages(out):
            if m.get("type") == "RECORD":
                records[m["stream"]].append(m["record"])
            elif m.get("type") == "STATE":
                state.update(m["value"])
        state["records"] = records
        with open(err, encoding="utf-8") as f:
            log = f.read()
        batches = sum("/batch?minorversion=75" in line for line in log.splitlines())
        expect(batches >= 2, f"{batches} batch requests")
        counts = {s: len(r) for s, r in records.items()}
        return f"{sum(counts.values())} records {counts}, {batches} batch requests, {secs:.1f}s"

    if not checks.check("discover (token refresh + CompanyInfo)", discover):
        return checks.exit_status()
    if not checks.check("sync (29 streams via batch, deleted_objects via CDC)", sync):
        return checks.exit_status()
    records = state["records"]
    extracted = {s: [r["Id"] for r in records.get(s, [])] for s in STREAMS}

    truth = {}

    def final_token_works():
        with open(config_path, encoding="utf-8") as f:
            final_rt = json.load(f)["refresh_token"]
        at2, _ = sim.refresh(final_rt)
        truth.update(sim.truth(at2))
        return "the refresh token the tap saved last refreshes"

    checks.check("saved refresh token", final_token_works)
    for stream, entity in STREAMS.items():

        def same_ids(stream=stream, entity=entity):
            got = extracted[stream]
            expect(len(got) == len(set(got)), f"{len(got) - len(set(got))} duplicates")
            want = truth.get(entity)
            expect(want is not None, "no ground truth")
            missing = sorted(set(want) - set(got), key=int)
            extra = sorted(set(got) - set(want), key=int)
            expect(not missing and not extra, f"missing {missing[:10]}, unexpected {extra[:10]}")
            return f"{len(got)} ids"

        checks.check(f"{stream}: exactly the simulator's {entity} ids", same_ids)

        def bookmark(stream=stream):
            rows = records.get(stream, [])
            latest = max((parse_time(r["MetaData"]["LastUpdatedTime"]) for r in rows), default=None)
            mark = state.get("bookmarks", {}).get(stream, {}).get("LastUpdatedTime")
            expect(mark is not None and latest is not None, f"bookmark {mark}")
            expect(parse_time(mark) == latest, f"bookmark {mark}, latest change {latest}")
            return f"bookmark {mark}"

        checks.check(f"{stream}: bookmark is the latest LastUpdatedTime", bookmark)

    def others_empty():
        others = {s: len(r) for s, r in records.items() if s not in STREAMS}
        expect(not any(others.values()), f"records in {others}")
        return f"no records in {', '.join(sorted(others)) or 'the other streams'}"

    checks.check("other streams empty", others_empty)
    write_ids(args.ids_out, {STREAMS[s]: extracted[s] for s in STREAMS})
    if not args.workdir and not checks.failed:
        shutil.rmtree(work, ignore_errors=True)
    return checks.exit_status()


if __name__ == "__main__":
    sys.exit(main())
