"""Workflows of the owners app. Views, tasks, admin and API call these; nothing else decides."""
