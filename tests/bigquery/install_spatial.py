"""Install DuckDB's spatial extension from the duckdb-extension-spatial package (no download).

The emulator runs `INSTALL spatial` at start; with the extension already in DuckDB's
extension folder that needs no network. Run with the emulator venv's python.
"""

from pathlib import Path

import duckdb
import duckdb_extension_spatial

VERSION = duckdb.__version__
path = Path(duckdb_extension_spatial.__file__).parent / "extensions" / f"v{VERSION}"
[extension] = path.glob("spatial.duckdb_extension")
con = duckdb.connect()
con.execute(f"INSTALL '{extension}'")
con.execute("LOAD spatial")
print(f"DuckDB {VERSION}: spatial extension installed from {extension}")
