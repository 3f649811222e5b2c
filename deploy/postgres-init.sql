-- Dagster's instance keeps its records in a database of its own, apart from the ERP's.
CREATE DATABASE dagster OWNER tds;
