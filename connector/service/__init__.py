"""The long-running service, ``segsync run``.

- :mod:`~connector.service.scheduler`: APScheduler jobs per connection × object,
  the job function :func:`~connector.service.scheduler.run_job` and its context.
- :mod:`~connector.service.locks`: a job runs on one replica at a time.
- :mod:`~connector.service.http`: ``/healthz``, ``/readyz``, Prometheus ``/metrics``.
- :mod:`~connector.service.logs`: structured, secret-free logs.
- :mod:`~connector.service.alerts`: the optional webhook.
- :mod:`~connector.service.app`: :class:`~connector.service.app.Service`, all of it wired.
- :mod:`~connector.service.cli`: the ``segsync run`` command.
"""
