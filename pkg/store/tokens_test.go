package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func hashOf(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func storedToken(id, secret string, created time.Time) *tandemv1.StoredToken {
	return &tandemv1.StoredToken{
		Token:        &tandemv1.ApiToken{TokenId: id, Name: id, Role: tandemv1.Role_ROLE_VIEWER, OrgIds: []string{"00Dorg000000001"}, CreatedAt: timestamppb.New(created)},
		SecretSha256: hashOf(secret),
	}
}

func TestTokensAreFoundByTheirSecretsHash(t *testing.T) {
	st := newTestStore(t, servertest.Redis(t))
	ctx := t.Context()
	now := time.Now()
	if err := st.PutToken(ctx, storedToken("b", "secret-b", now)); err != nil {
		t.Fatal(err)
	}
	if err := st.PutToken(ctx, storedToken("a", "secret-a", now.Add(time.Second))); err != nil {
		t.Fatal(err)
	}
	got, err := st.TokenBySecretHash(ctx, hashOf("secret-a"))
	if err != nil || got.GetToken().GetTokenId() != "a" {
		t.Fatalf("TokenBySecretHash(secret-a) = %v, %v", got, err)
	}
	list, err := st.ListTokens(ctx)
	if err != nil || len(list) != 2 || list[0].GetTokenId() != "b" {
		t.Fatalf("ListTokens = %v, %v; want b then a (oldest first)", list, err)
	}

	// A new secret for an id replaces the old one: the old secret finds nothing.
	if err := st.PutToken(ctx, storedToken("a", "secret-a2", now)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.TokenBySecretHash(ctx, hashOf("secret-a")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the replaced secret: %v, want ErrNotFound", err)
	}
	if got, err := st.TokenBySecretHash(ctx, hashOf("secret-a2")); err != nil || got.GetToken().GetTokenId() != "a" {
		t.Fatalf("the new secret: %v, %v", got, err)
	}

	if err := st.DeleteToken(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.TokenBySecretHash(ctx, hashOf("secret-a2")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a deleted token: %v, want ErrNotFound", err)
	}
	if err := st.DeleteToken(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting it again: %v, want ErrNotFound", err)
	}
}

func TestPutTokenRefusesWhatIsNotAHash(t *testing.T) {
	st := newTestStore(t, servertest.Redis(t))
	for _, tc := range []*tandemv1.StoredToken{
		{Token: &tandemv1.ApiToken{TokenId: "a"}, SecretSha256: "plain-secret"},
		{Token: &tandemv1.ApiToken{TokenId: "a"}, SecretSha256: hashOf("x")[:63] + "G"},
		{Token: &tandemv1.ApiToken{TokenId: "a:b"}, SecretSha256: hashOf("x")},
	} {
		if err := st.PutToken(t.Context(), tc); err == nil {
			t.Errorf("PutToken(%v) stored it", tc)
		}
	}
}
