"""Gateway: the imperative shell around protocol/, the window builder and kpi_core/."""
