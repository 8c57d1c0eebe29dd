"""The ASGI layers a request meets before Connexion routes it, wired in order by `app.py`."""
