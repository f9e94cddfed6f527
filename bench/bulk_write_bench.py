"""One Bulk 2.0 write under 20 % 5xx: ingest jobs created and record writes owed.

Writes ``--records`` accounts through ``SalesforceAdapter.write`` (the Bulk
path) against the Salesforce sandbox with ``--error-rate`` of calls answered
500/503, once per seed, with the default retry policy (6 attempts, no
back-off wait). Each job stays in UploadComplete and InProgress for 3 polls.
Reports, per seed: ingest jobs created; record writes owed (rows uploaded to
every job that was closed and not aborted: Salesforce processes those whether
or not anyone polls them, while the sandbox only moves a job on when polled);
whether the write succeeded; HTTP calls made.

    .venv/bin/python bench/bulk_write_bench.py [--records 5000] [--seeds 5] [--error-rate 0.2]
"""

from __future__ import annotations

import argparse

from connector.config import SalesforceConnection
from connector.crm.base import RecordUpdate
from connector.crm.retry import RetryPolicy
from connector.crm.salesforce import SalesforceAdapter
from connector.errors import SegsyncError
from segsync_sandbox.salesforce import CustomFieldSpec, start_salesforce
from segsync_sandbox.salesforce.bulk import bulk_service

PROCESSED_STATES = ("UploadComplete", "InProgress", "JobComplete")


def main() -> None:
    """Run the write once per seed and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--error-rate", type=float, default=0.2)
    args = parser.parse_args()
    box = start_salesforce(client_id="bulk-write-bench")
    try:
        for seed in range(1, args.seeds + 1):
            box.reset()
            service = bulk_service(box.app)
            service.reset()
            box.org.add_custom_field(
                "Account",
                CustomFieldSpec(
                    "Account.Segsync_Tier__c", "Picklist", "Tier", picklist_values=("A", "B")
                ),
            )
            ids = [box.org.insert("Account", {"Name": f"A{i}"}) for i in range(args.records)]
            settings = SalesforceConnection(
                auth="jwt",
                login_url=box.login_url,
                ca_file=box.ca_file,
                client_id=box.client_id,
                username=box.username,
                private_key_file=box.private_key_file,
                bulk_write_threshold=10,
            )
            policy = RetryPolicy(initial_wait=0, max_wait=0, sleep=lambda _s: None)
            adapter = SalesforceAdapter("sf", settings, retry=policy, bulk_wait=0)
            adapter.authenticate()
            service.settings.polls_per_state = 3
            box.app.faults.update(error_rate=args.error_rate, seed=seed)
            try:
                outcomes = adapter.write(
                    "account", [RecordUpdate(i, {"Segsync_Tier__c": "A"}) for i in ids]
                )
                result = f"written {sum(o.ok for o in outcomes)}"
            except SegsyncError as exc:
                result = f"failed: {type(exc).__name__}"
            box.app.faults.update(error_rate=0.0)
            jobs = [j for j in service.jobs() if j.kind == "ingest"]
            owed = sum(
                len(j.successes) + len(j.failures) + len(j.unprocessed)
                for j in jobs
                if j.state in PROCESSED_STATES
            )
            print(
                f"seed {seed}: {len(jobs)} ingest jobs, {owed} record writes owed, "
                f"{result}, {adapter.api_calls} calls"
            )
            adapter.close()
    finally:
        box.stop()


if __name__ == "__main__":
    main()
