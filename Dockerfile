# berth itself as an image. It needs the Docker socket of the host it schedules on:
#   docker run -v /var/run/docker.sock:/var/run/docker.sock -p 8080:8080 -p 9090:9090 berth
FROM node:20-bookworm-slim
WORKDIR /berth
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY scheduler ./scheduler
COPY proxy ./proxy
ENV BERTH_BIND=0.0.0.0 BERTH_DATA_DIR=/data
VOLUME /data
EXPOSE 8080 9090
CMD ["npx", "tsx", "src/main.ts", "serve"]
