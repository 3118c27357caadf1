package seal

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"
)

func mustKey(t testing.TB) []byte {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustKeyring(t testing.TB, primary []byte, old ...[]byte) *Keyring {
	t.Helper()
	kr, err := NewKeyring(primary, old...)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestSealOpenRoundTrip(t *testing.T) {
	kr := mustKeyring(t, mustKey(t))
	tests := []struct {
		name      string
		plaintext []byte
		ad        []byte
	}{
		{"empty plaintext", nil, []byte("00D000000000001:exchange.password")},
		{"password", []byte("hunter2"), []byte("00D000000000001:exchange.password")},
		{"no associated data", []byte("secret"), nil},
		{"pem", bytes.Repeat([]byte("-----BEGIN PRIVATE KEY-----\n"), 100), []byte("org:salesforce.private_key_pem")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sealed, err := kr.Seal(tc.plaintext, tc.ad)
			if err != nil {
				t.Fatal(err)
			}
			if len(tc.plaintext) > 0 && bytes.Contains(sealed, tc.plaintext) {
				t.Fatal("sealed value contains the plaintext")
			}
			got, err := kr.Open(sealed, tc.ad)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, tc.plaintext) {
				t.Fatalf("Open = %q, want %q", got, tc.plaintext)
			}
		})
	}
}

func TestSealUsesFreshNonces(t *testing.T) {
	kr := mustKeyring(t, mustKey(t))
	a, err := kr.Seal([]byte("same"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := kr.Seal([]byte("same"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same plaintext are identical: nonce reused")
	}
}

func TestOpenRejects(t *testing.T) {
	kr := mustKeyring(t, mustKey(t))
	ad := []byte("00D000000000001:exchange.password")
	sealed, err := kr.Seal([]byte("hunter2"), ad)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		c := bytes.Clone(sealed)
		c[i] ^= 0x01
		return c
	}
	other := mustKeyring(t, mustKey(t))
	tests := []struct {
		name    string
		kr      *Keyring
		sealed  []byte
		ad      []byte
		wantErr error
	}{
		{"wrong associated data", kr, sealed, []byte("00D000000000002:exchange.password"), ErrOpen},
		{"missing associated data", kr, sealed, nil, ErrOpen},
		{"tampered ciphertext", kr, flip(headerSize), ad, ErrOpen},
		{"tampered tag", kr, flip(len(sealed) - 1), ad, ErrOpen},
		{"tampered nonce", kr, flip(1 + keyIDSize), ad, ErrOpen},
		{"tampered key id", kr, flip(1), ad, ErrUnknownKey},
		{"tampered version", kr, flip(0), ad, ErrMalformed},
		{"truncated", kr, sealed[:headerSize+tagSize-1], ad, ErrMalformed},
		{"empty", kr, nil, ad, ErrMalformed},
		{"other keyring", other, sealed, ad, ErrUnknownKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.kr.Open(tc.sealed, tc.ad)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Open error = %v, want %v", err, tc.wantErr)
			}
			if got != nil {
				t.Fatalf("Open returned plaintext %q with an error", got)
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	oldKey, newKey := mustKey(t), mustKey(t)
	before := mustKeyring(t, oldKey)
	sealedOld, err := before.Seal([]byte("old secret"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}

	after := mustKeyring(t, newKey, oldKey)
	got, err := after.Open(sealedOld, []byte("ad"))
	if err != nil || string(got) != "old secret" {
		t.Fatalf("rotated keyring Open = %q, %v", got, err)
	}
	if !after.NeedsReseal(sealedOld) {
		t.Error("a value sealed with the old key does not need resealing")
	}
	sealedNew, err := after.Seal([]byte("new secret"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	if after.NeedsReseal(sealedNew) {
		t.Error("a value sealed with the primary key needs resealing")
	}
	if _, err := before.Open(sealedNew, []byte("ad")); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("old keyring opened a value of the new key: %v", err)
	}
	if after.PrimaryID() == before.PrimaryID() {
		t.Error("different keys share a key id")
	}
}

func TestNewKeyringRejects(t *testing.T) {
	k := mustKey(t)
	tests := []struct {
		name    string
		primary []byte
		old     [][]byte
	}{
		{"short primary", k[:16], nil},
		{"empty primary", nil, nil},
		{"short old key", k, [][]byte{k[:31]}},
		{"duplicate key", k, [][]byte{bytes.Clone(k)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewKeyring(tc.primary, tc.old...); !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("NewKeyring error = %v, want ErrInvalidKey", err)
			}
		})
	}
}

func TestParseKey(t *testing.T) {
	k := mustKey(t)
	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{"std", base64.StdEncoding.EncodeToString(k), false},
		{"raw std", base64.RawStdEncoding.EncodeToString(k), false},
		{"url", base64.URLEncoding.EncodeToString(k), false},
		{"raw url", base64.RawURLEncoding.EncodeToString(k), false},
		{"surrounding space", " " + EncodeKey(k) + "\n", false},
		{"too short", base64.StdEncoding.EncodeToString(k[:16]), true},
		{"not base64", "this is not a key!!", true},
		{"empty", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseKey(tc.in)
			if tc.wantErr {
				if !errors.Is(err, ErrInvalidKey) {
					t.Fatalf("ParseKey error = %v, want ErrInvalidKey", err)
				}
				if tc.in != "" && bytes.Contains([]byte(err.Error()), []byte(tc.in)) {
					t.Fatal("error message contains the key material")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, k) {
				t.Fatal("ParseKey returned a different key")
			}
		})
	}
}

func TestParseKeyring(t *testing.T) {
	a, b := mustKey(t), mustKey(t)
	kr, err := ParseKeyring(EncodeKey(a) + ", " + EncodeKey(b))
	if err != nil {
		t.Fatal(err)
	}
	if kr.PrimaryID() != idOf(a) {
		t.Error("the first key is not the primary key")
	}
	sealedB, err := mustKeyring(t, b).Seal([]byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Open(sealedB, nil); err != nil {
		t.Errorf("the second key does not open: %v", err)
	}
	for _, bad := range []string{"", EncodeKey(a) + ",", "nope"} {
		if _, err := ParseKeyring(bad); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ParseKeyring(%q) error = %v, want ErrInvalidKey", bad, err)
		}
	}
}

// FuzzOpen feeds arbitrary bytes to Open: it must never panic and never accept a value it
// did not seal.
func FuzzOpen(f *testing.F) {
	kr := mustKeyring(f, bytes.Repeat([]byte{7}, KeySize))
	good, err := kr.Seal([]byte("hunter2"), []byte("ad"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, []byte("ad"))
	f.Add(good[:headerSize], []byte("ad"))
	f.Add([]byte{formatVersion}, []byte(nil))
	f.Add([]byte{}, []byte("ad"))
	f.Add(bytes.Repeat([]byte{0xff}, 64), []byte("ad"))
	f.Fuzz(func(t *testing.T, sealed, ad []byte) {
		plain, err := kr.Open(sealed, ad)
		if err != nil {
			return
		}
		// The only values ever sealed under this key are seeds of "hunter2" with "ad" (the
		// fuzz workers seal their own copy, with their own nonce).
		if !bytes.Equal(ad, []byte("ad")) || string(plain) != "hunter2" {
			t.Fatalf("Open accepted a forged value: %x", sealed)
		}
	})
}

// FuzzParseKey checks that key parsing never panics and only accepts KeySize keys.
func FuzzParseKey(f *testing.F) {
	f.Add(EncodeKey(bytes.Repeat([]byte{1}, KeySize)))
	f.Add("")
	f.Add("====")
	f.Add("AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err == nil && len(k) != KeySize {
			t.Fatalf("ParseKey accepted %d bytes", len(k))
		}
	})
}
