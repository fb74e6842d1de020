//! PostgreSQL engine (next).
