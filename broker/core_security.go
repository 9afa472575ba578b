package broker

import (
	"context"
	"fmt"

	"github.com/sluicemq/sluice/auth"
	"github.com/sluicemq/sluice/controller"
)

// The core's security administration: SCRAM users and ACLs, written
// through the controller and read from this broker's copy of the metadata.
// Nothing here enforces them yet (docs/security.md).

// UserCredentials is one user's stored credentials as they may be shown:
// mechanisms and iterations, never salts or keys.
type UserCredentials struct {
	User       string
	Mechanisms []auth.Mechanism
	Iterations []int
}

// DescribeUsers returns the named users' credentials (every user when none
// is named); a named user without credentials gets controller.ErrUnknownUser
// in errs at its index.
func (b *Broker) DescribeUsers(names []string) ([]UserCredentials, []error) {
	md := b.store.Metadata()
	if len(names) == 0 {
		names = md.UserNames()
	}
	out := make([]UserCredentials, len(names))
	errs := make([]error, len(names))
	for i, u := range names {
		out[i].User = u
		creds, ok := md.Users[u]
		if !ok {
			errs[i] = fmt.Errorf("%w: %q", controller.ErrUnknownUser, u)
			continue
		}
		for _, m := range []auth.Mechanism{auth.ScramSHA256, auth.ScramSHA512} {
			if c, ok := creds[m]; ok {
				out[i].Mechanisms = append(out[i].Mechanisms, m)
				out[i].Iterations = append(out[i].Iterations, c.Iterations)
			}
		}
	}
	return out, errs
}

// UpsertCredentials stores credentials (derived by the caller from the
// password) and deletes others, in order; one error per change, the
// upsertions first.
func (b *Broker) UpsertCredentials(ctx context.Context, upserts []controller.UpsertCredential, deletes []controller.DeleteCredential) []error {
	errs := make([]error, 0, len(upserts)+len(deletes))
	for _, c := range upserts {
		_, err := b.store.Propose(ctx, c)
		errs = append(errs, err)
	}
	for _, c := range deletes {
		_, err := b.store.Propose(ctx, c)
		errs = append(errs, err)
	}
	return errs
}

// CreateACLs adds ACLs; each is validated first, and the valid ones are
// written in one command. One error per ACL, in order.
func (b *Broker) CreateACLs(ctx context.Context, acls []auth.ACL) []error {
	errs := make([]error, len(acls))
	var valid []auth.ACL
	for i, a := range acls {
		if err := a.Validate(); err != nil {
			errs[i] = fmt.Errorf("%w: %v", controller.ErrInvalidACL, err)
			continue
		}
		valid = append(valid, a)
	}
	if len(valid) == 0 {
		return errs
	}
	_, err := b.store.Propose(ctx, controller.CreateACLs{ACLs: valid})
	for i := range errs {
		if errs[i] == nil {
			errs[i] = err
		}
	}
	return errs
}

// DescribeACLs returns the ACLs f matches.
func (b *Broker) DescribeACLs(f auth.Filter) []auth.ACL {
	return b.store.Metadata().MatchingACLs(f)
}

// DeleteACLs removes the ACLs each filter matches and returns them per
// filter. The filters are matched against this broker's metadata, which
// may lag the controller by a moment: an ACL created an instant before
// may survive the deletion.
func (b *Broker) DeleteACLs(ctx context.Context, filters []auth.Filter) ([][]auth.ACL, error) {
	md := b.store.Metadata()
	per := make([][]auth.ACL, len(filters))
	var all []auth.ACL
	for i, f := range filters {
		per[i] = md.MatchingACLs(f)
		all = append(all, per[i]...)
	}
	if len(all) == 0 {
		return per, nil
	}
	if _, err := b.store.Propose(ctx, controller.DeleteACLs{ACLs: all}); err != nil {
		return nil, err
	}
	return per, nil
}
