"""What every server-rendered page shares: one Jinja environment, the signed browser session,
the templates and the static assets."""
