-- Nothing on SQLite: its planner needs no steering (see the PostgreSQL counterpart).
SELECT 1;
