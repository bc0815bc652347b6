package main

import (
	"context"
	"fmt"
	"io"

	"github.com/noonhq/noon/services"
)

func init() {
	register(command{name: "migrate", summary: "run every service's embedded Postgres migrations", run: runMigrate})
}

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", "Brings every service's Postgres schema (services.<name>.postgres_schema) up to date with its embedded migrations, in the order of the services list (safe to run from many processes at once; services also migrate on start).\n\n"+moduleList(), stderr)
	var cf configFlags
	cf.register(fs, "")
	pg := fs.String("postgres", "", "Postgres `URL` (overrides postgres.url)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := cf.loadWith(func(c *Config) { setIf(&c.Postgres.URL, *pg) })
	if err != nil {
		return err
	}
	if cfg.Postgres.URL == "" {
		return fmt.Errorf("no Postgres: set postgres.url or -postgres")
	}
	env, closeStores, err := openStores(ctx, cfg, services.Needs{Postgres: true}, false)
	if err != nil {
		return err
	}
	defer closeStores()
	for _, m := range modules {
		schema, err := m.Migrate(ctx, env.Postgres, cfg.Services[m.Name()])
		if err != nil {
			return err
		}
		if schema != "" {
			fmt.Fprintf(stdout, "migrated %s\n", m.Name())
		}
	}
	return nil
}
