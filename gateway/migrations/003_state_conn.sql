-- The panel's MQTT connection number since boot (protocol README, "state": optional "conn").
-- With boot it orders the panel's connections, so a replaced connection's last will that the
-- broker delivers after the new connection's state does not mark a live panel offline.
ALTER TABLE panel_state ADD COLUMN conn BIGINT;
