"""How Connexion serves `openapi.yaml`: our validators, problem+json, every framework override."""
