package ewssim

import (
	"bytes"
	"compress/gzip"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"strings"
)

// Ids, change keys and sync states are opaque base64 strings, like Exchange's. They are built
// so that a string that was not produced by this server (or was mangled on the way) is told
// apart from one that merely names something that no longer exists: the first is
// ErrorInvalidIdMalformed / ErrorInvalidSyncStateData, the second ErrorItemNotFound.

type guid [16]byte

// mailboxGUID derives a stable mailbox GUID from the address, so that seeded mailboxes get the
// same item ids on every run.
func mailboxGUID(address string) guid {
	sum := sha256.Sum256([]byte("ewssim mailbox " + strings.ToLower(address)))
	var g guid
	copy(g[:], sum[:16])
	g[6] = g[6]&0x0f | 0x40 // version 4
	g[8] = g[8]&0x3f | 0x80 // RFC 4122 variant
	return g
}

func (g guid) String() string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", g[0:4], g[4:6], g[6:8], g[8:10], g[10:16])
}

const (
	objFolder byte = 0x2e
	objItem   byte = 0x46
	idLen          = 4 + 36 + 2 + 8 + 2
)

var idHeader = []byte{0x00, 0x03, 0x24, 0x00}

var errMalformedID = errors.New("malformed id")

// encodeID builds the id of object num (a folder or an item) in the mailbox g.
func encodeID(g guid, obj byte, num uint64) string {
	b := make([]byte, 0, idLen)
	b = append(b, idHeader...)
	b = append(b, g.String()...)
	b = append(b, 0x00, obj)
	b = binary.BigEndian.AppendUint64(b, num)
	b = binary.BigEndian.AppendUint16(b, idCheck(b))
	return base64.StdEncoding.EncodeToString(b)
}

// decodeID returns the mailbox GUID text, object type and number of an id.
func decodeID(s string) (mailbox string, obj byte, num uint64, err error) {
	if len(s) > 128 {
		return "", 0, 0, errMalformedID
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != idLen || !bytes.Equal(b[:4], idHeader) || b[40] != 0x00 {
		return "", 0, 0, errMalformedID
	}
	if binary.BigEndian.Uint16(b[idLen-2:]) != idCheck(b[:idLen-2]) {
		return "", 0, 0, errMalformedID
	}
	return string(b[4:40]), b[41], binary.BigEndian.Uint64(b[42:50]), nil
}

func idCheck(b []byte) uint16 {
	h := fnv.New32a()
	h.Write(b)
	s := h.Sum32()
	return uint16(s>>16) ^ uint16(s)
}

// encodeChangeKey builds a change key: a kind prefix, the mailbox GUID and the mailbox-wide
// change number of the modification, so every modification yields a new key.
func encodeChangeKey(prefix byte, g guid, change uint64) string {
	b := make([]byte, 0, 30)
	b = append(b, prefix, 0, 0, 0, 0x16, 0, 0, 0)
	b = append(b, g[:]...)
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], change)
	b = append(b, n[2:]...)
	return base64.StdEncoding.EncodeToString(b)
}

// syncState is the position of a client in a folder's change log.
type syncState struct {
	mailbox guid
	folder  uint64 // the folder's object number
	pos     uint64 // number of log entries the client has seen
}

const syncStateVersion = 1

// encodeSyncState gzips and signs the state so that it looks and behaves like Exchange's
// ("H4sI..."): opaque to clients, and rejected when edited.
func encodeSyncState(key []byte, st syncState) string {
	payload := []byte{syncStateVersion}
	payload = append(payload, st.mailbox[:]...)
	payload = binary.AppendUvarint(payload, st.folder)
	payload = binary.AppendUvarint(payload, st.pos)
	mac := hmac.New(sha256.New, key)
	mac.Write(payload)
	payload = mac.Sum(payload)[:len(payload)+8]

	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	// Writes to a bytes.Buffer cannot fail.
	_, _ = zw.Write(payload)
	_ = zw.Close()
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

var errBadSyncState = errors.New("sync state is not valid")

// decodeSyncState reverses encodeSyncState; anything it did not produce is errBadSyncState.
func decodeSyncState(key []byte, s string) (syncState, error) {
	const maxLen = 512
	if len(s) > maxLen {
		return syncState{}, errBadSyncState
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return syncState{}, errBadSyncState
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return syncState{}, errBadSyncState
	}
	payload, err := io.ReadAll(io.LimitReader(zr, maxLen))
	if err != nil || len(payload) < 1+16+2+8 || payload[0] != syncStateVersion {
		return syncState{}, errBadSyncState
	}
	body, sig := payload[:len(payload)-8], payload[len(payload)-8:]
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil)[:8], sig) {
		return syncState{}, errBadSyncState
	}
	var st syncState
	copy(st.mailbox[:], body[1:17])
	rest := body[17:]
	folder, n := binary.Uvarint(rest)
	if n <= 0 {
		return syncState{}, errBadSyncState
	}
	pos, m := binary.Uvarint(rest[n:])
	if m <= 0 || n+m != len(rest) {
		return syncState{}, errBadSyncState
	}
	st.folder, st.pos = folder, pos
	return st, nil
}
