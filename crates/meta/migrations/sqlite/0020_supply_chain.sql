-- Scan results live as long as the image they describe. They are kept per digest (the same
-- image pushed to two repositories is scanned once), so they go when the last repository
-- holding the digest lets go of it: a deleted manifest, a deleted repository (its rows
-- cascade), garbage collection. Signature states already go with their manifest (0015).
CREATE TRIGGER scan_results_manifest_gone AFTER DELETE ON repository_manifests
WHEN NOT EXISTS (SELECT 1 FROM repository_manifests WHERE digest = old.digest)
BEGIN
    DELETE FROM scan_results WHERE digest = old.digest;
    DELETE FROM vulnerability_summaries WHERE digest = old.digest;
END;

-- Why a signed image's signatures do not verify (a JSON array of short texts), for the API
-- and the tag page: a keyless bundle, a COSE envelope, a key nobody trusts.
ALTER TABLE signature_states ADD COLUMN reasons TEXT NOT NULL DEFAULT '[]';

-- Results of images deleted before this trigger existed.
DELETE FROM scan_results
 WHERE NOT EXISTS (SELECT 1 FROM repository_manifests m WHERE m.digest = scan_results.digest);
DELETE FROM vulnerability_summaries
 WHERE NOT EXISTS (SELECT 1 FROM repository_manifests m WHERE m.digest = vulnerability_summaries.digest);
