// Package seal protects secrets at rest: connection passwords, client secrets and private
// keys are sealed with AES-256-GCM before they reach Redis, and opened only by the workers
// that need them.
//
// A sealed value is self-describing so that keys can rotate without a migration:
//
//	version (1 byte) | key id (4 bytes) | nonce (12 bytes) | ciphertext and GCM tag
//
// The key id is derived from the key itself (the first four bytes of its SHA-256), so an
// operator rotates by putting the new key first and keeping the old ones after it
// (TANDEM_SEAL_KEY="new,old"): new values are sealed with the primary key, old values still
// open, and NeedsReseal says which stored values to rewrite. The header is authenticated
// together with the caller's associated data, which binds a sealed value to its place (for
// example the org id and field name), so a value copied to another org or field does not open.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// EnvKey is the environment variable that holds the keyring: base64 keys separated by
// commas, the primary (sealing) key first.
const EnvKey = "TANDEM_SEAL_KEY"

// KeySize is the size of a key in bytes (AES-256).
const KeySize = 32

const (
	formatVersion byte = 1
	keyIDSize          = 4
	nonceSize          = 12
	headerSize         = 1 + keyIDSize + nonceSize
	tagSize            = 16
)

// Errors returned by Open and the key parsers.
var (
	// ErrMalformed means the sealed value is too short or has an unknown format version.
	ErrMalformed = errors.New("seal: malformed sealed value")
	// ErrUnknownKey means the value was sealed with a key that is not in the keyring.
	ErrUnknownKey = errors.New("seal: sealed with a key not in the keyring")
	// ErrOpen means authentication failed: the value was tampered with, or the associated
	// data differs from the data it was sealed with.
	ErrOpen = errors.New("seal: message authentication failed")
	// ErrInvalidKey means a key is not KeySize bytes, or not valid base64.
	ErrInvalidKey = errors.New("seal: invalid key")
)

// KeyID identifies a key inside sealed values.
type KeyID [keyIDSize]byte

// String returns the id in hex, safe to log: it reveals nothing about the key.
func (id KeyID) String() string { return fmt.Sprintf("%x", id[:]) }

type key struct {
	id   KeyID
	aead cipher.AEAD
}

// Keyring seals with its primary key and opens with any of its keys. It is safe for
// concurrent use.
type Keyring struct {
	primary key
	byID    map[KeyID]key
}

// NewKeyring returns a keyring that seals with primary and also opens values sealed with
// any of old. Every key must be KeySize bytes; the keys are copied.
func NewKeyring(primary []byte, old ...[]byte) (*Keyring, error) {
	p, err := newKey(primary)
	if err != nil {
		return nil, fmt.Errorf("primary key: %w", err)
	}
	kr := &Keyring{primary: p, byID: map[KeyID]key{p.id: p}}
	for i, raw := range old {
		k, err := newKey(raw)
		if err != nil {
			return nil, fmt.Errorf("old key %d: %w", i+1, err)
		}
		if _, dup := kr.byID[k.id]; dup {
			// Either the same key twice or (with odds of 2^-32) two keys sharing an id;
			// both are configuration mistakes worth stopping for.
			return nil, fmt.Errorf("old key %d: %w: duplicate key id %s", i+1, ErrInvalidKey, k.id)
		}
		kr.byID[k.id] = k
	}
	return kr, nil
}

func newKey(raw []byte) (key, error) {
	if len(raw) != KeySize {
		return key{}, fmt.Errorf("%w: %d bytes, want %d", ErrInvalidKey, len(raw), KeySize)
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return key{}, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	aead, err := cipher.NewGCMWithNonceSize(block, nonceSize)
	if err != nil {
		return key{}, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	return key{id: idOf(raw), aead: aead}, nil
}

func idOf(raw []byte) KeyID {
	sum := sha256.Sum256(raw)
	var id KeyID
	copy(id[:], sum[:keyIDSize])
	return id
}

// PrimaryID returns the id of the key that Seal uses.
func (kr *Keyring) PrimaryID() KeyID { return kr.primary.id }

// Seal encrypts plaintext with the primary key and a random nonce, authenticating
// associatedData with it. The same associatedData must be given to Open.
func (kr *Keyring) Seal(plaintext, associatedData []byte) ([]byte, error) {
	out := make([]byte, headerSize, headerSize+len(plaintext)+tagSize)
	out[0] = formatVersion
	copy(out[1:1+keyIDSize], kr.primary.id[:])
	nonce := out[1+keyIDSize : headerSize]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: read nonce: %w", err)
	}
	return kr.primary.aead.Seal(out, nonce, plaintext, additional(out[:1+keyIDSize], associatedData)), nil
}

// Open authenticates and decrypts a value made by Seal with any key of the keyring.
func (kr *Keyring) Open(sealed, associatedData []byte) ([]byte, error) {
	k, err := kr.keyFor(sealed)
	if err != nil {
		return nil, err
	}
	nonce := sealed[1+keyIDSize : headerSize]
	plain, err := k.aead.Open(nil, nonce, sealed[headerSize:], additional(sealed[:1+keyIDSize], associatedData))
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

// NeedsReseal reports whether sealed was made with a key other than the primary one, so that
// a rotation can rewrite it. Malformed values and values of unknown keys report false: they
// cannot be opened to be resealed.
func (kr *Keyring) NeedsReseal(sealed []byte) bool {
	k, err := kr.keyFor(sealed)
	return err == nil && k.id != kr.primary.id
}

func (kr *Keyring) keyFor(sealed []byte) (key, error) {
	if len(sealed) < headerSize+tagSize || sealed[0] != formatVersion {
		return key{}, ErrMalformed
	}
	var id KeyID
	copy(id[:], sealed[1:1+keyIDSize])
	k, ok := kr.byID[id]
	if !ok {
		return key{}, fmt.Errorf("%w (key id %s)", ErrUnknownKey, id)
	}
	return k, nil
}

// additional authenticates the version and key id along with the caller's data, so that a
// header cannot be swapped. The caller's data is length-prefixed to keep the encoding
// unambiguous.
func additional(header, associatedData []byte) []byte {
	ad := make([]byte, 0, len(header)+8+len(associatedData))
	ad = append(ad, header...)
	n := uint64(len(associatedData))
	for i := 7; i >= 0; i-- {
		ad = append(ad, byte(n>>(8*i)))
	}
	return append(ad, associatedData...)
}

// GenerateKey returns a new random key, for `tandem dev` and for operators creating a key.
func GenerateKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("seal: generate key: %w", err)
	}
	return k, nil
}

// EncodeKey returns key in the base64 form that ParseKey reads.
func EncodeKey(key []byte) string { return base64.StdEncoding.EncodeToString(key) }

// ParseKey decodes one base64 key (standard or URL alphabet, padded or not) of KeySize bytes.
// Its errors never contain the input.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding,
	} {
		k, err := enc.DecodeString(s)
		if err != nil {
			continue
		}
		if len(k) != KeySize {
			return nil, fmt.Errorf("%w: decodes to %d bytes, want %d", ErrInvalidKey, len(k), KeySize)
		}
		return k, nil
	}
	return nil, fmt.Errorf("%w: not base64", ErrInvalidKey)
}

// ParseKeyring reads a keyring in the EnvKey form: base64 keys separated by commas, the
// primary key first.
func ParseKeyring(s string) (*Keyring, error) {
	parts := strings.Split(s, ",")
	keys := make([][]byte, 0, len(parts))
	for i, p := range parts {
		if strings.TrimSpace(p) == "" {
			return nil, fmt.Errorf("key %d: %w: empty", i+1, ErrInvalidKey)
		}
		k, err := ParseKey(p)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		keys = append(keys, k)
	}
	return NewKeyring(keys[0], keys[1:]...)
}
