#!/usr/bin/env python3
"""Run Airbyte's `source-quickbooks` (airbyte-source-quickbooks 4.0.4, a declarative manifest on
airbyte-cdk), unmodified, against qbo-sim.

Only its hosts change: it runs under `intuit_rebind.py`, which sends its calls for
`quickbooks.api.intuit.com` and `oauth.platform.intuit.com` to the simulator. The run is the one
the Airbyte platform makes, including what the platform does between runs: it saves the config
the connector emits in `CONTROL` messages (the rotated refresh token) and passes the last `STATE`
back.
  1. `check`: refreshes the token (a `CONTROL` message carries the new config) and reads the
     `accounts` stream;
  2. `discover`: the catalog (28 streams);
  3. `read`, every stream incremental: 30-day slices from `start_date` to now, `STARTPOSITION`
     paging of `MAXRESULTS 200`, `Active IN (true, false)` for list entities;
  4. `read` again with the final state: nothing new.
The extracted ids of the 26 entities the simulator holds data of must be exactly the simulator's
(inactive rows included), the other streams (budgets, tax agencies) empty, and the last saved
refresh token must still work.

Usage: python airbyte_source_quickbooks_check.py --base-url http://127.0.0.1:PORT [--workdir DIR]
       [--ids-out FILE] [--start-date YYYY-MM-DDTHH:MM:SSZ]
Run it with the interpreter of the environment `airbyte-source-quickbooks==4.0.4` is installed in.
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

from qbo_sim_api import STREAMS, Checks, Sim, expect, messages, run_connector, tail, write_ids  # noqa: E402

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", default=os.environ.get("QBO_SIM_BASE_URL", "http://127.0.0.1:8080"))
    ap.add_argument("--client-id", default=os.environ.get("QBO_SIM_CLIENT_ID", "sim-client-id"))
    ap.add_argument("--client-secret", default=os.environ.get("QBO_SIM_CLIENT_SECRET", "sim-client-secret"))
    ap.add_argument("--realm-id", default=os.environ.get("QBO_SIM_REALM_ID", "9130350000000001"))
    ap.add_argument("--start-date", help="default: the day before the simulator's earliest change")
    ap.add_argument(
        "--workdir", help="where config, catalog and outputs go (default: a temp dir, removed if all passed)"
    )
    ap.add_argument("--ids-out", help="write {stream: ids} extracted here, as JSON")
    args = ap.parse_args()
    work = args.workdir or tempfile.mkdtemp(prefix="source-quickbooks-")
    os.makedirs(work, exist_ok=True)
    sim = Sim(args.base_url, args.client_id, args.client_secret, args.realm_id)
    checks = Checks()

    at, rt = sim.refresh(sim.reconnect())
    start_date = args.start_date or sim.earliest_day(at)
    config_path = os.path.join(work, "config.json")
    config = {
        "client_id": args.client_id,
        "client_secret": args.client_secret,
        "refresh_token": rt,
        # An expired token: the connector refreshes first, as after any long pause.
        "access_token": "expired",
        "token_expiry_date": "2020-01-01T00:00:00+00:00",
        "realm_id": args.realm_id,
        "start_date": start_date,
        "sandbox": False,
    }

    def save_config(c):
        with open(config_path, "w", encoding="utf-8") as f:
            json.dump(c, f, indent=2)

    save_config(config)
    print(f"source-quickbooks against {sim.base}, start_date {start_date}, workdir {work}", flush=True)

    def run(name, command):
        """Runs one command; applies the connector's CONTROL config like the platform does."""
        out, err = os.path.join(work, f"{name}.out"), os.path.join(work, f"{name}.err")
        code, secs = run_connector(sim.base, ["source-quickbooks", *command], out, err)
        msgs = messages(out)
        errors = [m for m in msgs if m.get("type") == "TRACE" and m["trace"].get("type") == "ERROR"]
        expect(code == 0 and not errors, f"exit {code}, errors {errors[:1]}:\n{tail(err)}\n{tail(out, 5)}")
        controls = [m for m in msgs if m.get("type") == "CONTROL"]
        for c in controls:
            config.update(c["control"]["connectorConfig"]["config"])
        save_config(config)
        return msgs, controls, secs

    def check():
        msgs, controls, secs = run("check", ["check", "--config", config_path])
        status = [m["connectionStatus"]["status"] for m in msgs if m.get("type") == "CONNECTION_STATUS"]
        expect(status == ["SUCCEEDED"], f"status {status}")
        expect(controls and config["refresh_token"] != rt, "no rotated refresh token in a CONTROL message")
        return f"SUCCEEDED, rotated refresh token saved, {secs:.1f}s"

    catalog_path = os.path.join(work, "catalog.json")

    def discover():
        msgs, _, secs = run("discover", ["discover", "--config", config_path])
        catalogs = [m["catalog"] for m in msgs if m.get("type") == "CATALOG"]
        expect(len(catalogs) == 1, "no catalog")
        streams = catalogs[0]["streams"]
        expect(len(streams) == 28, f"{len(streams)} streams")
        configured = {
            "streams": [
                {
                    "stream": s,
                    "sync_mode": "incremental",
                    "destination_sync_mode": "append",
                    "cursor_field": s.get("default_cursor_field", []),
                }
                for s in streams
            ]
        }
        with open(catalog_path, "w", encoding="utf-8") as f:
            json.dump(configured, f)
        return f"{len(streams)} streams, all selected incremental, {secs:.1f}s"

    result = {}

    def read():
        msgs, controls, secs = run("read", ["read", "--config", config_path, "--catalog", catalog_path])
        records = collections.defaultdict(list)
        states = {}
        rate_limited = 0
        for m in msgs:
            if m.get("type") == "RECORD":
                records[m["record"]["stream"]].append(m["record"]["data"])
            elif m.get("type") == "STATE":
                states[m["state"]["stream"]["stream_descriptor"]["name"]] = m["state"]
            elif m.get("type") == "TRACE" and m["trace"].get("type") == "STREAM_STATUS":
                reasons = m["trace"]["stream_status"].get("reasons") or []
                rate_limited += sum(r.get("type") == "RATE_LIMITED" for r in reasons)
        result.update(records=records, states=states)
        counts = {s: len(r) for s, r in records.items()}
        expect(states.keys() >= set(STREAMS), f"states for {sorted(states)}")
        return (
            f"{sum(counts.values())} records {counts}, {len(states)} stream states, "
            f"{rate_limited} rate-limited waits, {secs:.1f}s"
        )

    for name, fn in [
        ("check (token refresh + accounts)", check),
        ("discover", discover),
        ("read (28 streams, 30-day slices)", read),
    ]:
        if not checks.check(name, fn):
            return checks.exit_status()
    records = result["records"]
    extracted = {s: [r["Id"] for r in records.get(s, [])] for s in STREAMS}

    def incremental_again():
        state_path = os.path.join(work, "state.json")
        with open(state_path, "w", encoding="utf-8") as f:
            json.dump(list(result["states"].values()), f)
        msgs, _, secs = run(
            "read2", ["read", "--config", config_path, "--catalog", catalog_path, "--state", state_path]
        )
        again = collections.Counter(m["record"]["stream"] for m in msgs if m.get("type") == "RECORD")
        expect(not again, f"records again: {dict(again)}")
        return f"no records after the saved state, {secs:.1f}s"

    checks.check("read again from the saved state", incremental_again)

    truth = {}

    def final_token_works():
        at2, _ = sim.refresh(config["refresh_token"])
        truth.update(sim.truth(at2))
        return "the refresh token of the last CONTROL message refreshes"

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
