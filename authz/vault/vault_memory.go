package vault

import (
	"cmp"
	"context"
	"slices"
	"sync"
)

// MemoryVaultStore is an in-process VaultStore. Its contents die with the
// process; wrap it in an EncryptedVaultStore to keep secrets sealed in
// memory dumps too. It is safe for concurrent use.
type MemoryVaultStore struct {
	mu   sync.RWMutex
	recs map[VaultKey]VaultRecord
}

// NewMemoryVaultStore returns an empty store.
func NewMemoryVaultStore() *MemoryVaultStore {
	return &MemoryVaultStore{recs: make(map[VaultKey]VaultRecord)}
}

func copyRecord(r VaultRecord) VaultRecord {
	r.Data = slices.Clone(r.Data)
	return r
}

// Get implements VaultStore.
func (s *MemoryVaultStore) Get(ctx context.Context, key VaultKey) (VaultRecord, error) {
	if err := ctx.Err(); err != nil {
		return VaultRecord{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.recs[key]
	if !ok {
		return VaultRecord{}, errorf(ErrCredentialNotFound, nil, "no credential %s", key)
	}
	return copyRecord(r), nil
}

// Put implements VaultStore.
func (s *MemoryVaultStore) Put(ctx context.Context, key VaultKey, data []byte) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.recs[key].Version + 1
	s.recs[key] = VaultRecord{Key: key, Data: slices.Clone(data), Version: v}
	return v, nil
}

// CompareAndSwap implements VaultStore.
func (s *MemoryVaultStore) CompareAndSwap(ctx context.Context, key VaultKey, version int64, data []byte) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.recs[key]
	switch {
	case version == 0 && ok:
		return 0, errorf(ErrVersionConflict, nil, "credential %s already exists", key)
	case version > 0 && !ok:
		return 0, errorf(ErrCredentialNotFound, nil, "no credential %s", key)
	case ok && cur.Version != version:
		return 0, errorf(ErrVersionConflict, nil, "credential %s is at version %d, not %d", key, cur.Version, version)
	case version < 0:
		return 0, errorf(ErrVersionConflict, nil, "negative version")
	}
	s.recs[key] = VaultRecord{Key: key, Data: slices.Clone(data), Version: version + 1}
	return version + 1, nil
}

// Delete implements VaultStore.
func (s *MemoryVaultStore) Delete(ctx context.Context, key VaultKey) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.recs[key]; !ok {
		return errorf(ErrCredentialNotFound, nil, "no credential %s", key)
	}
	delete(s.recs, key)
	return nil
}

// List implements VaultStore.
func (s *MemoryVaultStore) List(ctx context.Context, project, provider string) ([]VaultRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	var out []VaultRecord
	for k, r := range s.recs {
		if k.Project == project && (provider == "" || k.Provider == provider) {
			out = append(out, copyRecord(r))
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b VaultRecord) int {
		return cmp.Or(cmp.Compare(a.Key.Provider, b.Key.Provider), cmp.Compare(a.Key.Service, b.Key.Service))
	})
	return out, nil
}
