package vault

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// sealedVersion is the first byte of every sealed record.
const sealedVersion = 1

// EncryptedVaultStore seals every record with AES-256-GCM before it reaches
// the inner store, so a database (or its backups) holds only ciphertext.
// Each record names the id of the key that sealed it, which allows key
// rotation: new writes use the active key, reads use whichever key the
// record names, and Rewrap moves old records to the active key. The
// associated data binds the ciphertext to its record key and key id, so a
// record copied under another project or service fails to open with
// ErrVaultTampered, as does any altered byte.
//
// Record layout: version (1 byte) | key id length (1 byte) | key id |
// nonce (12 bytes) | ciphertext and tag.
//
// An EncryptedVaultStore is safe for concurrent use if its inner store is.
type EncryptedVaultStore struct {
	inner  VaultStore
	aeads  map[string]cipher.AEAD
	active string
}

var _ VaultStore = (*EncryptedVaultStore)(nil)

// NewEncryptedVaultStore wraps inner. keys maps key ids (1–255 bytes) to
// 32-byte AES-256 keys; activeKeyID names the one that seals new writes.
// The key bytes are copied.
func NewEncryptedVaultStore(inner VaultStore, keys map[string][]byte, activeKeyID string) (*EncryptedVaultStore, error) {
	if inner == nil {
		return nil, errors.New("authz: encrypted vault: inner store is required")
	}
	s := &EncryptedVaultStore{inner: inner, aeads: make(map[string]cipher.AEAD, len(keys)), active: activeKeyID}
	for id, k := range keys {
		if id == "" || len(id) > 255 {
			return nil, fmt.Errorf("authz: encrypted vault: key id %q must be 1-255 bytes", id)
		}
		if len(k) != 32 {
			return nil, fmt.Errorf("authz: encrypted vault: key %q is %d bytes, want 32", id, len(k))
		}
		block, err := aes.NewCipher(slices.Clone(k))
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		s.aeads[id] = aead
	}
	if _, ok := s.aeads[activeKeyID]; !ok {
		return nil, fmt.Errorf("authz: encrypted vault: active key %q not among the keys %q", activeKeyID, slices.Sorted(maps.Keys(keys)))
	}
	return s, nil
}

// associatedData binds a sealed record to where it is stored and which key
// sealed it. Parts are length-prefixed so no two keys share an encoding.
func associatedData(key VaultKey, kid string) []byte {
	ad := []byte("agentprov-vault-v1")
	for _, p := range []string{key.Project, key.Provider, key.Service, kid} {
		ad = binary.BigEndian.AppendUint32(ad, uint32(len(p)))
		ad = append(ad, p...)
	}
	return ad
}

func (s *EncryptedVaultStore) seal(key VaultKey, plain []byte) ([]byte, error) {
	aead := s.aeads[s.active]
	out := make([]byte, 0, 2+len(s.active)+aead.NonceSize()+len(plain)+aead.Overhead())
	out = append(out, sealedVersion, byte(len(s.active)))
	out = append(out, s.active...)
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plain, associatedData(key, s.active)), nil
}

// open decrypts a sealed record and reports the key id that sealed it.
func (s *EncryptedVaultStore) open(key VaultKey, sealed []byte) ([]byte, string, error) {
	if len(sealed) < 2 || sealed[0] != sealedVersion {
		return nil, "", errorf(ErrVaultTampered, nil, "record %s is not a sealed record", key)
	}
	n := int(sealed[1])
	if len(sealed) < 2+n {
		return nil, "", errorf(ErrVaultTampered, nil, "record %s is truncated", key)
	}
	kid := string(sealed[2 : 2+n])
	aead, ok := s.aeads[kid]
	if !ok {
		return nil, kid, errorf(ErrUnknownVaultKey, nil, "record %s is sealed with unknown key %q", key, kid)
	}
	rest := sealed[2+n:]
	if len(rest) < aead.NonceSize()+aead.Overhead() {
		return nil, kid, errorf(ErrVaultTampered, nil, "record %s is truncated", key)
	}
	plain, err := aead.Open(nil, rest[:aead.NonceSize()], rest[aead.NonceSize():], associatedData(key, kid))
	if err != nil {
		return nil, kid, errorf(ErrVaultTampered, nil, "record %s fails authentication", key)
	}
	return plain, kid, nil
}

// Get implements VaultStore.
func (s *EncryptedVaultStore) Get(ctx context.Context, key VaultKey) (VaultRecord, error) {
	rec, err := s.inner.Get(ctx, key)
	if err != nil {
		return VaultRecord{}, err
	}
	plain, _, err := s.open(key, rec.Data)
	if err != nil {
		return VaultRecord{}, err
	}
	return VaultRecord{Key: key, Data: plain, Version: rec.Version}, nil
}

// Put implements VaultStore.
func (s *EncryptedVaultStore) Put(ctx context.Context, key VaultKey, data []byte) (int64, error) {
	sealed, err := s.seal(key, data)
	if err != nil {
		return 0, err
	}
	return s.inner.Put(ctx, key, sealed)
}

// CompareAndSwap implements VaultStore.
func (s *EncryptedVaultStore) CompareAndSwap(ctx context.Context, key VaultKey, version int64, data []byte) (int64, error) {
	sealed, err := s.seal(key, data)
	if err != nil {
		return 0, err
	}
	return s.inner.CompareAndSwap(ctx, key, version, sealed)
}

// Delete implements VaultStore.
func (s *EncryptedVaultStore) Delete(ctx context.Context, key VaultKey) error {
	return s.inner.Delete(ctx, key)
}

// List implements VaultStore. One record that fails to open fails the call.
func (s *EncryptedVaultStore) List(ctx context.Context, project, provider string) ([]VaultRecord, error) {
	recs, err := s.inner.List(ctx, project, provider)
	if err != nil {
		return nil, err
	}
	for i := range recs {
		plain, _, err := s.open(recs[i].Key, recs[i].Data)
		if err != nil {
			return nil, err
		}
		recs[i].Data = plain
	}
	return recs, nil
}

// Rewrap re-seals under the active key every record of project (of
// provider, if not empty) sealed with another key, using compare-and-set so
// a concurrent write is never overwritten (such a record is already under
// the active key). It returns how many records it rewrote. Once Rewrap has
// covered every project, retired keys can be dropped.
func (s *EncryptedVaultStore) Rewrap(ctx context.Context, project, provider string) (int, error) {
	recs, err := s.inner.List(ctx, project, provider)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, rec := range recs {
		plain, kid, err := s.open(rec.Key, rec.Data)
		if err != nil {
			return n, err
		}
		if kid == s.active {
			continue
		}
		sealed, err := s.seal(rec.Key, plain)
		if err != nil {
			return n, err
		}
		if _, err := s.inner.CompareAndSwap(ctx, rec.Key, rec.Version, sealed); err != nil {
			if errors.Is(err, ErrVersionConflict) || errors.Is(err, ErrCredentialNotFound) {
				continue
			}
			return n, err
		}
		n++
	}
	return n, nil
}
