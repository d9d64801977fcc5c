"""Reporting workflows: intake (search rows, touches, revenue), attribution, exports and
the forensic report. Views, tasks and commands call these."""
