/*
 * The numbered migrations compiled into the binary. The table is generated
 * by scripts/embed_schema.py from src/store/schema/NNN_name.sql (shared by
 * both engines) or NNN_name.sqlite.sql + NNN_name.pg.sql (where they must
 * differ). Versions run 1..schema_migrations_count without gaps; the
 * generator refuses anything else.
 */
#ifndef MYELIN_STORE_SCHEMA_H
#define MYELIN_STORE_SCHEMA_H

struct schema_migration {
    int version;
    const char *name;   /* "init" for 001_init.sql */
    const char *sqlite; /* the script for SQLite */
    const char *pg;     /* the script for PostgreSQL */
};

extern const struct schema_migration schema_migrations[];
extern const int schema_migrations_count;

#endif
