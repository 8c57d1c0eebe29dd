"""Everything that talks SQL: tables, queries and the typed errors they raise."""
