from sqlalchemy import text


def test_engine_connects_and_sqlite_pragmas(engine):
    with engine.connect() as conn:
        assert conn.execute(text("select 1")).scalar() == 1
        if engine.dialect.name == "sqlite":
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA secure_delete")).scalar() == 1
