package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/client"
)

// The user and acl commands store SCRAM users and ACLs in the cluster
// metadata; brokers started with --sasl-mechanisms and --authorizer
// enforce them (docs/security.md).

func newUserCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Create, list and delete SCRAM users",
		Long: `Create, list and delete SCRAM users. The credential (salt, iterations and
derived keys) is computed by this command: the password never reaches the
cluster. Brokers log users in with --sasl-mechanisms; on a cluster that
requires it (--require-auth), create the first user as the operator, with
the brokers' cluster secret (docs/security.md).`,
		Example: `  printf '%s' "$PASSWORD" | sluice user create alice --password-stdin
  printf '%s' "$PASSWORD" | sluice user create admin --password-stdin --operator-secret-file secret
  sluice user create svc --password s3cret --mechanism SCRAM-SHA-256
  sluice user list --json
  sluice user delete alice --mechanism SCRAM-SHA-512`,
	}
	cmd.AddCommand(newUserCreateCmd(g), newUserListCmd(g), newUserDeleteCmd(g))
	return cmd
}

func parseMechanism(s string) (auth.Mechanism, error) {
	m := auth.Mechanism(strings.ToUpper(s))
	if m != auth.ScramSHA256 && m != auth.ScramSHA512 {
		return "", fmt.Errorf("--mechanism %q: want SCRAM-SHA-256 or SCRAM-SHA-512", s)
	}
	return m, nil
}

func newUserCreateCmd(g *globals) *cobra.Command {
	var (
		password   string
		fromStdin  bool
		mechanism  string
		iterations int
	)
	cmd := &cobra.Command{
		Use:   "create USER",
		Short: "Create a user, or replace its credential for one mechanism",
		Example: `  printf '%s' "$PASSWORD" | sluice user create alice --password-stdin
  sluice user create svc --password s3cret --mechanism SCRAM-SHA-256 --iterations 16384`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mech, err := parseMechanism(mechanism)
			if err != nil {
				return err
			}
			if fromStdin == (password != "") {
				return errors.New("give the password with exactly one of --password and --password-stdin")
			}
			if fromStdin {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && line == "" {
					return fmt.Errorf("read the password from stdin: %w", err)
				}
				password = strings.TrimRight(line, "\r\n")
			}
			return withClient(cmd, g, func(ctx context.Context, cl *client.Client) error {
				if err := cl.UpsertUser(ctx, args[0], password, mech, iterations); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "stored %s credential for user %s\n", mech, args[0])
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&password, "password", "", "the password (visible to other local users in the process list: prefer --password-stdin)")
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from the first line of stdin")
	cmd.Flags().StringVar(&mechanism, "mechanism", string(auth.ScramSHA512), "SCRAM-SHA-256 or SCRAM-SHA-512")
	cmd.Flags().IntVar(&iterations, "iterations", auth.DefaultIterations, fmt.Sprintf("PBKDF2 iterations (%d to %d)", auth.MinIterations, auth.MaxIterations))
	return cmd
}

func newUserListCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [USER...]",
		Short: "List users and their mechanisms (never keys)",
		Example: `  sluice user list
  sluice user list alice --json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, g, func(ctx context.Context, cl *client.Client) error {
				users, err := cl.ListUsers(ctx, args...)
				if err != nil && len(users) == 0 {
					return err
				}
				out := cmd.OutOrStdout()
				if asJSON {
					type cred struct {
						Mechanism  string `json:"mechanism"`
						Iterations int    `json:"iterations"`
					}
					type user struct {
						User        string `json:"user"`
						Credentials []cred `json:"credentials"`
					}
					js := []user{}
					for _, u := range users {
						j := user{User: u.User, Credentials: []cred{}}
						for _, c := range u.Credentials {
							j.Credentials = append(j.Credentials, cred{string(c.Mechanism), c.Iterations})
						}
						js = append(js, j)
					}
					if werr := writeJSON(out, js); werr != nil {
						return werr
					}
					return err
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "USER\tMECHANISM\tITERATIONS")
				for _, u := range users {
					for _, c := range u.Credentials {
						fmt.Fprintf(tw, "%s\t%s\t%d\n", u.User, c.Mechanism, c.Iterations)
					}
				}
				if ferr := tw.Flush(); ferr != nil {
					return ferr
				}
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newUserDeleteCmd(g *globals) *cobra.Command {
	var mechanism string
	cmd := &cobra.Command{
		Use:     "delete USER",
		Short:   "Delete a user's credential for one mechanism",
		Example: `  sluice user delete alice --mechanism SCRAM-SHA-512`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mech, err := parseMechanism(mechanism)
			if err != nil {
				return err
			}
			return withClient(cmd, g, func(ctx context.Context, cl *client.Client) error {
				if err := cl.DeleteUser(ctx, args[0], mech); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deleted %s credential of user %s\n", mech, args[0])
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&mechanism, "mechanism", string(auth.ScramSHA512), "SCRAM-SHA-256 or SCRAM-SHA-512")
	return cmd
}

func newACLCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "acl",
		Short: "Add, list and remove ACLs",
		Long: `Add, list and remove ACLs in Kafka's model: a principal (User:name or
User:*), a host (an IP or *), a resource (--topic, --group or --cluster)
with a literal or prefixed name, an operation, allow or deny. Deny wins.
Brokers started with --authorizer check every request against them
(docs/security.md).`,
		Example: `  sluice acl add --allow User:alice --operation write --topic orders
  sluice acl add --allow User:etl --operation read --topic audit- --prefixed
  sluice acl add --deny User:bob --operation all --topic payroll
  sluice acl list --principal User:alice --json
  sluice acl remove --principal User:bob`,
	}
	cmd.AddCommand(newACLAddCmd(g), newACLListCmd(g), newACLRemoveCmd(g))
	return cmd
}

// aclFlags are the flags shared by acl add, list and remove.
type aclFlags struct {
	allow, deny, principal, host string
	topic, group                 string
	cluster, prefixed            bool
	operation                    string
}

func (f *aclFlags) register(cmd *cobra.Command, forFilter bool) {
	if forFilter {
		cmd.Flags().StringVar(&f.principal, "principal", "", "only this principal (User:name)")
		cmd.Flags().StringVar(&f.host, "host", "", "only this host")
		cmd.Flags().StringVar(&f.operation, "operation", "", "only this operation")
	} else {
		cmd.Flags().StringVar(&f.allow, "allow", "", "allow this principal (User:name or User:*)")
		cmd.Flags().StringVar(&f.deny, "deny", "", "deny this principal (User:name or User:*)")
		cmd.Flags().StringVar(&f.host, "host", auth.WildcardHost, "the host the principal connects from (an IP, or *)")
		cmd.Flags().StringVar(&f.operation, "operation", "", "read, write, create, delete, alter, describe, describe-configs, alter-configs, cluster-action, idempotent-write or all")
	}
	cmd.Flags().StringVar(&f.topic, "topic", "", "a topic (* for every topic)")
	cmd.Flags().StringVar(&f.group, "group", "", "a consumer or queue group (* for every group)")
	cmd.Flags().BoolVar(&f.cluster, "cluster", false, "the cluster")
	cmd.Flags().BoolVar(&f.prefixed, "prefixed", false, "the name is a prefix")
}

// resource reads --topic, --group and --cluster; with none given, ok is
// false.
func (f *aclFlags) resource() (rt auth.ResourceType, name string, ok bool, err error) {
	n := 0
	if f.topic != "" {
		rt, name, n = auth.ResourceTopic, f.topic, n+1
	}
	if f.group != "" {
		rt, name, n = auth.ResourceGroup, f.group, n+1
	}
	if f.cluster {
		rt, name, n = auth.ResourceCluster, auth.ClusterName, n+1
	}
	if n > 1 {
		return 0, "", false, errors.New("give at most one of --topic, --group and --cluster")
	}
	return rt, name, n == 1, nil
}

func (f *aclFlags) acl() (auth.ACL, error) {
	a := auth.ACL{Host: f.host, Pattern: auth.PatternLiteral}
	switch {
	case (f.allow == "") == (f.deny == ""):
		return a, errors.New("give exactly one of --allow and --deny")
	case f.allow != "":
		a.Principal, a.Permission = f.allow, auth.Allow
	default:
		a.Principal, a.Permission = f.deny, auth.Deny
	}
	rt, name, ok, err := f.resource()
	if err != nil {
		return a, err
	}
	if !ok {
		return a, errors.New("give one of --topic, --group and --cluster")
	}
	a.Resource, a.Name = rt, name
	if f.prefixed {
		a.Pattern = auth.PatternPrefixed
	}
	if f.operation == "" {
		return a, errors.New("give --operation")
	}
	if a.Op, err = auth.ParseOperation(f.operation); err != nil {
		return a, err
	}
	return a, a.Validate()
}

func (f *aclFlags) filter() (auth.Filter, error) {
	flt := auth.Filter{Principal: f.principal, Host: f.host}
	rt, name, ok, err := f.resource()
	if err != nil {
		return flt, err
	}
	if ok {
		flt.Resource, flt.Name = rt, name
		flt.Pattern = auth.PatternLiteral
		if f.prefixed {
			flt.Pattern = auth.PatternPrefixed
		}
	}
	if f.operation != "" {
		if flt.Op, err = auth.ParseOperation(f.operation); err != nil {
			return flt, err
		}
	}
	return flt, nil
}

func newACLAddCmd(g *globals) *cobra.Command {
	var f aclFlags
	cmd := &cobra.Command{
		Use:   "add",
		Short: "Add an ACL",
		Example: `  sluice acl add --allow User:alice --operation write --topic orders
  sluice acl add --allow User:* --operation read --group billing
  sluice acl add --allow User:broker --operation cluster-action --cluster`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := f.acl()
			if err != nil {
				return err
			}
			return withClient(cmd, g, func(ctx context.Context, cl *client.Client) error {
				if err := cl.CreateACLs(ctx, a); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "added: %v\n", a)
				return nil
			})
		},
	}
	f.register(cmd, false)
	return cmd
}

func printACLs(cmd *cobra.Command, acls []auth.ACL, asJSON bool) error {
	out := cmd.OutOrStdout()
	if asJSON {
		type aclJSON struct {
			Principal  string `json:"principal"`
			Host       string `json:"host"`
			Resource   string `json:"resource_type"`
			Name       string `json:"name"`
			Pattern    string `json:"pattern_type"`
			Operation  string `json:"operation"`
			Permission string `json:"permission"`
		}
		js := []aclJSON{}
		for _, a := range acls {
			js = append(js, aclJSON{a.Principal, a.Host, a.Resource.String(), a.Name, a.Pattern.String(), a.Op.String(), a.Permission.String()})
		}
		return writeJSON(out, js)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PERMISSION\tPRINCIPAL\tOPERATION\tRESOURCE\tPATTERN\tNAME\tHOST")
	for _, a := range acls {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Permission, a.Principal, a.Op, a.Resource, a.Pattern, a.Name, a.Host)
	}
	return tw.Flush()
}

// newACLFilterCmd is acl list and acl remove: a filter from the flags, an
// operation on it, and the ACLs it returns printed.
func newACLFilterCmd(g *globals, use, short, example string, run func(*cobra.Command, *client.Client, auth.Filter) ([]auth.ACL, error)) *cobra.Command {
	var f aclFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:     use,
		Short:   short,
		Example: example,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			flt, err := f.filter()
			if err != nil {
				return err
			}
			return withClient(cmd, g, func(ctx context.Context, cl *client.Client) error {
				acls, err := run(cmd, cl, flt)
				if err != nil {
					return err
				}
				return printACLs(cmd, acls, asJSON)
			})
		},
	}
	f.register(cmd, true)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newACLListCmd(g *globals) *cobra.Command {
	return newACLFilterCmd(g, "list", "List ACLs, optionally only those matching the flags", `  sluice acl list
  sluice acl list --principal User:alice --topic orders --json`,
		func(cmd *cobra.Command, cl *client.Client, flt auth.Filter) ([]auth.ACL, error) {
			return cl.ListACLs(cmd.Context(), flt)
		})
}

func newACLRemoveCmd(g *globals) *cobra.Command {
	return newACLFilterCmd(g, "remove", "Remove the ACLs matching the flags (at least one flag)", `  sluice acl remove --principal User:bob
  sluice acl remove --topic orders --operation write`,
		func(cmd *cobra.Command, cl *client.Client, flt auth.Filter) ([]auth.ACL, error) {
			if flt == (auth.Filter{}) {
				return nil, errors.New("give at least one of --principal, --host, --operation, --topic, --group and --cluster (removing every ACL takes an explicit filter)")
			}
			return cl.DeleteACLs(cmd.Context(), flt)
		})
}
