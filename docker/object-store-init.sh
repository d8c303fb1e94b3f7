#!/bin/sh
# object-store-init (one-shot, MinIO client image): the bucket of docker-compose.yaml, private,
# and driftloop's own access key (the workers' and MLflow's), limited to that bucket. The MinIO
# root account stays with this job and the object-store service. Safe to run again: an existing
# bucket is kept, the key's secret is set from docker/.env, the policy is re-applied.
set -eu

refuse() {  # the rule of docker/compose_init.py: no empty, placeholder or short secret
    lowered=$(printf '%s' "$2" | tr '[:upper:]' '[:lower:]')
    case "$lowered" in
        "" | admin | changeme | change-me | change_me | default | minio | minioadmin | password | root | secret | test)
            echo "object-store-init: $1 is empty or a placeholder: generate docker/.env with \`make env\`" >&2
            exit 1 ;;
        *changeme* | *change-me* | *change_me* | *replace* | *placeholder* | *example*)
            echo "object-store-init: $1 is a placeholder: generate docker/.env with \`make env\`" >&2
            exit 1 ;;
    esac
    if [ "${#2}" -lt 16 ]; then
        echo "object-store-init: $1 is shorter than 16 characters: generate docker/.env with \`make env\`" >&2
        exit 1
    fi
}

refuse MINIO_ROOT_PASSWORD "${MINIO_ROOT_PASSWORD:-}"
refuse S3_ACCESS_KEY_ID "${S3_ACCESS_KEY_ID:-}"
refuse S3_SECRET_ACCESS_KEY "${S3_SECRET_ACCESS_KEY:-}"

mc alias set local http://object-store:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc mb --ignore-existing "local/$S3_BUCKET"
mc anonymous set none "local/$S3_BUCKET"

policy=/tmp/driftloop-policy.json
cat >"$policy" <<EOF
{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
     "Resource": ["arn:aws:s3:::$S3_BUCKET"]},
    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
                                   "s3:ListMultipartUploadParts"],
     "Resource": ["arn:aws:s3:::$S3_BUCKET/*"]}
  ]
}
EOF
mc admin policy create local driftloop-bucket "$policy"
mc admin user add local "$S3_ACCESS_KEY_ID" "$S3_SECRET_ACCESS_KEY"
if ! mc admin user info local "$S3_ACCESS_KEY_ID" | grep -q driftloop-bucket; then
    mc admin policy attach local driftloop-bucket --user "$S3_ACCESS_KEY_ID"
fi
echo "object-store-init: bucket $S3_BUCKET (private), access key $S3_ACCESS_KEY_ID limited to it"
