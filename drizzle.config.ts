// drizzle-kit configuration: `drizzle-kit generate` writes SQL migrations for the
// control plane's store from its table definitions. The store applies them at open.
export default {
  dialect: 'sqlite',
  schema: './xds-server/store/tables.ts',
  out: './xds-server/store/migrations',
};
