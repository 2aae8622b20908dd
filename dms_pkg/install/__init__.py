"""Installing the plugin into a database: migrations, SQL API, privileges."""
