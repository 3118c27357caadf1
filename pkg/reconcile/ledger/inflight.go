package ledger

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers that commandID reads (a test checks them against the generated descriptors).
const (
	pendingCommandField protowire.Number = 1 // tandem.v1.PendingWrite.command
	commandIDField      protowire.Number = 1 // tandem.v1.WriteCommand.command_id
)

// commandID reads PendingWrite.command.command_id from an encoded PendingWrite without decoding
// the rest — the record the command writes and the source's field hashes, which a worker asking
// which of a batch's commands are still in flight (Outbox.InFlight) has no use for. It reads what
// proto.Unmarshal would: occurrences of the command merge, and the last command_id wins.
func commandID(b []byte) (string, error) {
	var id []byte
	err := eachBytesField(b, pendingCommandField, func(cmd []byte) error {
		err := eachBytesField(cmd, commandIDField, func(v []byte) error {
			id = v
			return nil
		})
		if err != nil {
			return fmt.Errorf("command: %w", err)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("pending write: %w", err)
	}
	return string(id), nil
}

// eachBytesField calls fn with the value of every occurrence, in order, of the length-delimited
// field num of the encoded message b, skipping every other field (and an occurrence of num with
// another wire type, which proto.Unmarshal keeps as an unknown field).
func eachBytesField(b []byte, num protowire.Number, fn func([]byte) error) error {
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		if n == num && typ == protowire.BytesType {
			v, l := protowire.ConsumeBytes(b)
			if l < 0 {
				return protowire.ParseError(l)
			}
			if err := fn(v); err != nil {
				return err
			}
			b = b[l:]
			continue
		}
		l = protowire.ConsumeFieldValue(n, typ, b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
	}
	return nil
}
