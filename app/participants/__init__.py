"""Participants' pages: sign in with a team token, /me with live submissions, the upload form."""
