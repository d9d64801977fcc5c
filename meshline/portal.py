"""The portal's navigation, filled by each app from its AppConfig.ready().

``nav_links`` holds ``(order, label, url_name)``; every url_name takes the org slug.
"""

nav_links: list[tuple[int, str, str]] = []


def add_nav_link(order: int, label: str, url_name: str) -> None:
    if (order, label, url_name) not in nav_links:
        nav_links.append((order, label, url_name))
