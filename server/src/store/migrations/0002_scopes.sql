-- Agents and API keys limited to sites; sites that limit agents to their topics
-- (security review F10). Lists are comma-separated, as topics are.
ALTER TABLE agents ADD COLUMN site_ids TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN site_ids TEXT NOT NULL DEFAULT '';
ALTER TABLE sites ADD COLUMN restrict_agents_to_topics BIGINT NOT NULL DEFAULT 0;
