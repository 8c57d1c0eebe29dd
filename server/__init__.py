"""How the process serves: what uvicorn is asked to do around the application."""
