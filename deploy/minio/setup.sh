#!/bin/sh
# One-shot job (minio/mc image): the bucket batchway keeps its files in, and batchway's own MinIO user,
# allowed into that bucket only, so the batchway containers never hold MinIO's root credentials.
# Safe to run on every `up`: the bucket is kept if it exists, `user add` of an existing user only sets its
# secret again (a changed S3_SECRET_ACCESS_KEY takes effect this way), `policy create` replaces the
# policy, and attaching a policy that is already attached succeeds (mc releases since late 2024).
set -eu

mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"
mc mb --ignore-existing "local/$S3_BUCKET"

# printf, not cat: the mc image is minimal.
printf '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": ["arn:aws:s3:::%s", "arn:aws:s3:::%s/*"]}]}\n' \
    "$S3_BUCKET" "$S3_BUCKET" >/tmp/batchway-policy.json
mc admin policy create local batchway-bucket /tmp/batchway-policy.json
mc admin user add local "$S3_ACCESS_KEY_ID" "$S3_SECRET_ACCESS_KEY"
mc admin policy attach local batchway-bucket --user "$S3_ACCESS_KEY_ID"
echo "minio-setup: bucket $S3_BUCKET ready for $S3_ACCESS_KEY_ID"
