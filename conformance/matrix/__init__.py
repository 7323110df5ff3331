"""Regression testing on real releases: one environment per framework release (`envs`), the
release table (`releases`), running the suite in each (`run`), and the search for the release
where a behaviour changed (`bisect`). The comparison page is `conformance.report.changes`."""
