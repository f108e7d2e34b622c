# berth as an image: compiled JavaScript on plain node (no tsx, no dev packages).
# It schedules on the Docker engine whose socket it is given, and shares the host's
# network: backends publish their ports on the host's 127.0.0.1, where berth must
# reach them. berth binds 127.0.0.1 unless BERTH_BIND says otherwise.
#   docker build -t berth .
#   docker run --network host -v /var/run/docker.sock:/var/run/docker.sock -v berth-data:/data berth
# docker-compose.yml runs it this way, with PostgreSQL.
FROM node:20-bookworm-slim AS build
WORKDIR /berth
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY scheduler ./scheduler
COPY proxy ./proxy
RUN npm run build

FROM node:20-bookworm-slim
WORKDIR /berth
ENV NODE_ENV=production BERTH_DATA_DIR=/data
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /berth/dist ./dist
COPY bin ./bin
VOLUME /data
ENTRYPOINT ["node", "bin/berth.js"]
CMD ["serve"]
